"""Real-backbone adapters on small random pipelines of the real diffusers/transformers classes, saved in the
diffusers pipeline layout (no hub access), plus the CogVideoX v-prediction conversion in closed form and a
Wan run through the stages."""

import copy
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dcm.backbones import load_backbone, pretrained_adapter
from dcm.backbones.cogvideox import CogVideoXBackbone, ddpm_coefficients, ddpm_timestep, flow_velocity
from dcm.backbones.diffusers_backbone import write_pointer
from dcm.backbones.hunyuan_video import pack_condition, unpack_condition
from dcm.config import load_config
from dcm.errors import DCMError
from dcm.experts import attach_detail_expert
from dcm.pipelines import PIPELINES

REPO = Path(__file__).resolve().parents[1]
WORDS = "a the red blue green cat dog runs over under sea city night sky walks in of".split()
SHAPE = {"frames": 5, "height": 32, "width": 32, "max_sequence_length": 8}


def word_tokenizer() -> PreTrainedTokenizerFast:
    """An offline word-level tokenizer over WORDS (the real ones cannot be downloaded here)."""
    specials = ["<pad>", "</s>", "<unk>", "<s>"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(specials + WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", bos_token="<s>")


def build_wan(path: Path) -> None:
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    encoder = UMT5EncoderModel(UMT5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                                          relative_attention_num_buckets=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], latents_mean=[0.1] * 4, latents_std=[2.0] * 4)
    net = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32)
    WanPipeline(tokenizer=word_tokenizer(), text_encoder=encoder, vae=vae, transformer=net,
                scheduler=UniPCMultistepScheduler(**PIPELINES["wan"].scheduler_config)).save_pretrained(path)


def build_hunyuan_video(path: Path) -> None:
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline,
                           HunyuanVideoTransformer3DModel)
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    llama = LlamaModel(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                                   num_key_value_heads=2, num_hidden_layers=3, head_dim=8))
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_attention_heads=2,
                                        num_hidden_layers=1, projection_dim=8, bos_token_id=3, eos_token_id=1))
    vae = AutoencoderKLHunyuanVideo(latent_channels=4, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8,) * 4,
                                    layers_per_block=1, norm_num_groups=4)
    net = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10,
                                         num_layers=2, num_single_layers=1, num_refiner_layers=1, patch_size=1,
                                         patch_size_t=1, guidance_embeds=True, text_embed_dim=16,
                                         pooled_projection_dim=8, rope_axes_dim=(2, 4, 4))
    HunyuanVideoPipeline(text_encoder=llama, tokenizer=word_tokenizer(), transformer=net, vae=vae,
                         scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip,
                         tokenizer_2=word_tokenizer()).save_pretrained(path)


def build_cogvideox(path: Path) -> None:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    encoder = T5EncoderModel(T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                                      relative_attention_num_buckets=8))
    vae = AutoencoderKLCogVideoX(down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8,) * 4,
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2)
    net = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                      time_embed_dim=8, text_embed_dim=16, num_layers=2, sample_width=4,
                                      sample_height=4, sample_frames=5, patch_size=2, max_text_seq_length=8)
    scheduler = CogVideoXDDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                       snr_shift_scale=3.0, timestep_spacing="trailing", clip_sample=False)
    # the pipeline fuses q/k/v of the transformer it is given; the unfused one is saved as the pretrained net
    CogVideoXPipeline(tokenizer=word_tokenizer(), text_encoder=encoder, vae=vae, transformer=copy.deepcopy(net),
                      scheduler=scheduler).save_pretrained(path)
    net.save_pretrained(path / "transformer")


BUILDERS = {"wan": build_wan, "hunyuan_video": build_hunyuan_video, "cogvideox": build_cogvideox}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pipeline(request, tmp_path_factory):
    """(backbone name, pipeline directory) of a small random pipeline of each real backbone."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param](path)
    return request.param, path


def test_adapter_shapes_layers_expert_and_round_trip(pipeline, tmp_path):
    name, path = pipeline
    backbone = pretrained_adapter(name)({"pretrained": str(path), **SHAPE})
    assert backbone.latent_shape == (4, 2, 4, 4)  # (5 - 1) / 4 + 1 frames, 32 / 8 pixels
    net = backbone.load_network(path / "transformer").eval()
    for dotted in backbone.timestep_layer_names:
        module = net
        for part in dotted.split("."):
            module = getattr(module, part)
    names = {n for n, _ in net.named_modules()}
    for linear in backbone.attention_linear_names:
        assert any(n.endswith("." + linear) for n in names), linear
    cond = backbone.encode_prompts(["a red cat runs", "the dog walks in the city"])
    assert cond.shape[0] == 2 and cond.isfinite().all()
    x = torch.randn(2, *backbone.latent_shape)
    v = backbone.predict(net, x, torch.tensor([0.9, 0.2]), cond)
    assert v.shape == x.shape and v.isfinite().all()
    videos = backbone.decode(x)
    assert videos.dtype == torch.uint8 and videos.shape[0] == 2 and videos.shape[2:] == (32, 32, 3)
    assert backbone.encode_video(videos).shape == x.shape
    features = backbone.features(net, x, torch.tensor(0.5), cond, 1)
    assert len(features) == len(getattr(net, backbone.blocks_attribute))
    assert all(f.ndim == 3 and f.shape[0] == 2 and f.isfinite().all() for f in features)

    expert = attach_detail_expert(net, backbone, rank=2, alpha=4)
    trainable = {n for n, p in expert.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("detail.") for n in trainable)
    assert len(expert.detail.layers) + len(expert.detail.params) == len(backbone.timestep_layer_names)
    before = backbone.predict(net, x, torch.tensor([0.2, 0.2]), cond)
    with torch.no_grad():
        for p in expert.detail.parameters():
            p.add_(0.1)
    after = expert(backbone, x, torch.tensor([0.2, 0.2]), cond)
    assert not torch.allclose(before, after)  # the copied timestep layers are what the detail expert runs
    assert torch.allclose(backbone.predict(net, x, torch.tensor([0.2, 0.2]), cond), before)  # SemE untouched

    student = backbone.load_network(path / "transformer")
    backbone.save_network(student, tmp_path / "student")
    again = backbone.load_network(tmp_path / "student")
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values()))


def test_text_encoders_leave_the_device_once_prompts_are_encoded(pipeline, monkeypatch):
    """release_text_encoders moves every text encoder to the CPU, the guidance's negative prompt encoded first;
    encoding afterwards runs them there and gives the same embeddings, and the network still predicts."""
    name, path = pipeline
    backbone = pretrained_adapter(name)({"pretrained": str(path), **SHAPE})
    cond = backbone.encode_prompts(["a red cat runs"])
    moved = []
    for encoder in backbone.text_encoders():
        monkeypatch.setattr(encoder, "to", lambda *args, e=encoder, to=encoder.to: moved.append((e, args)) or to(*args))
    backbone.release_text_encoders()
    assert moved == [(e, ("cpu",)) for e in backbone.text_encoders()] and backbone.text_device.type == "cpu"
    assert (getattr(backbone, "_negative", None) is not None) == (backbone.guidance["kind"] == "cfg")
    assert torch.equal(backbone.encode_prompts(["a red cat runs"]), cond)
    net = backbone.load_network(path / "transformer").eval()
    assert backbone.guided_predict(net, torch.randn(1, *backbone.latent_shape), torch.tensor([0.5]), cond).isfinite().all()


def test_pointer_file_loads_pretrained_and_detects_a_changed_pipeline(tmp_path):
    torch.manual_seed(0)
    build_wan(tmp_path / "wan")
    write_pointer(tmp_path / "teacher", tmp_path / "wan")
    cfg = {"backbone": {"name": "wan", "pretrained": str(tmp_path / "wan"), **SHAPE}}
    backbone = load_backbone(cfg, tmp_path / "teacher")
    net = backbone.load_network(tmp_path / "teacher")
    assert net.config.num_layers == 2
    (tmp_path / "wan" / "transformer" / "config.json").write_text(
        (tmp_path / "wan" / "transformer" / "config.json").read_text().replace('"num_layers": 2', '"num_layers": 3'))
    with pytest.raises(DCMError, match="rerun the 'teacher' stage"):
        load_backbone(cfg, tmp_path / "teacher")
    with pytest.raises(DCMError, match="available: tiny, wan, hunyuan_video, cogvideox"):
        pretrained_adapter("sora")
    with pytest.raises(DCMError, match="backbone.pretrained="):
        pretrained_adapter("wan")({"pretrained": str(tmp_path / "nowhere"), **SHAPE})


def test_hunyuan_condition_packing_round_trips():
    embeds, mask, pooled = torch.randn(2, 5, 6), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]), torch.randn(2, 4)
    packed = pack_condition(embeds, mask, pooled)
    assert packed.shape == (2, 6, 7)
    states, mask_out, pooled_out = unpack_condition(packed, 4)
    assert torch.equal(states, embeds) and torch.equal(mask_out, mask) and torch.equal(pooled_out, pooled)
    assert torch.equal(unpack_condition(packed.half().float(), 4)[1], mask)  # the fp16 trajectory cache keeps it


def test_cogvideox_conversion_in_closed_form():
    """A fake model that returns the exact v-prediction a eps - b x0 of a known (x0, eps) at the DDPM time it is
    given (integer t, so alphas_cumprod[t] is exact): the adapter must return the flow velocity eps - x0."""
    backbone = CogVideoXBackbone.__new__(CogVideoXBackbone)
    from diffusers import CogVideoXDDIMScheduler

    alphas_cumprod = CogVideoXDDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                            rescale_betas_zero_snr=True, snr_shift_scale=3.0).alphas_cumprod
    backbone.alphas_cumprod = alphas_cumprod
    backbone.compute_dtype = torch.float64  # the fake model computes in float64
    times = torch.tensor([100, 600])
    a_true, b_true = alphas_cumprod[times].sqrt(), (1 - alphas_cumprod[times]).sqrt()
    sigma = b_true / (a_true + b_true)  # sigma / (1 - sigma) = b / a
    x0, eps = torch.randn(2, 4, 2, 4, 4, dtype=torch.float64), torch.randn(2, 4, 2, 4, 4, dtype=torch.float64)
    x_flow = (1 - sigma).view(-1, 1, 1, 1, 1) * x0 + sigma.view(-1, 1, 1, 1, 1) * eps

    class ExactV(torch.nn.Module):
        config = type("Config", (), {"use_rotary_positional_embeddings": False})()

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, hidden_states, encoder_hidden_states, timestep, return_dict):
            assert torch.allclose(timestep, times.double(), atol=1e-6)
            ab = alphas_cumprod[timestep.round().long()].view(-1, 1, 1, 1, 1)
            return ((ab.sqrt() * eps - (1 - ab).sqrt() * x0).transpose(1, 2),)

    velocity = backbone.predict(ExactV(), x_flow, sigma, torch.zeros(2, 8, 16, dtype=torch.float64))
    assert torch.allclose(velocity, eps - x0, atol=1e-9)
    a, b, r = ddpm_coefficients(torch.tensor([0.25]))  # sigma / (1 - sigma) = 1/3
    assert torch.allclose(torch.cat([a, b, r]), torch.tensor([3 / 10**0.5, 1 / 10**0.5, 10**0.5 / 4], dtype=torch.float64))
    assert float(ddpm_timestep(alphas_cumprod, torch.ones(1))) == 0.0 and float(ddpm_timestep(alphas_cumprod, torch.zeros(1))) == 999.0
    x_t, v = torch.randn(3), torch.randn(3)
    assert torch.allclose(flow_velocity(x_t, v, torch.tensor(1.0), torch.tensor(0.0)), v - x_t)  # sigma = 0: eps - x0 = v - x


def test_wan_stages_end_to_end(tmp_path, monkeypatch):
    """dataset -> teacher -> trajectories -> seme -> dete -> sample on config/wan2.1-t2v-1.3b.yaml, shrunk."""
    from dcm.io import load_tensors, read_json
    from dcm.stages import dataset, dete, sample, seme, teacher, trajectories

    torch.manual_seed(0)
    build_wan(tmp_path / "wan")
    (tmp_path / "prompts.txt").write_text("# two for training, one held out\na red cat runs\nthe dog walks\nblue sea\n")
    cfg = load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", [
        f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'wan'}", "backbone.dtype=float32",
        "backbone.device=cpu", "backbone.frames=5", "backbone.height=32", "backbone.width=32",
        "backbone.max_sequence_length=8", f"data.prompt_file={tmp_path / 'prompts.txt'}", "data.holdout_prompts=1",
        "schedule.num_steps=8", "schedule.kappa=4", "threads=2", "tracking.enabled=false",
        "trajectories.shard_size=2", "seme.steps=2", "seme.batch_size=2", "seme.checkpoint_every=1",
        "dete.steps=2", "dete.batch_size=2", "dete.checkpoint_every=1", "dete.lora_rank=2", "dete.lora_alpha=4",
        "sampling.steps=[2]", "sampling.teacher_steps=8", "tables.ablation_steps=2", "userstudy.steps=2", "pcm.phases=2",
        "sampling.latency.warmup=0", "sampling.latency.repeats=1",
        "sampling.prompts=[a red cat runs]"])
    dataset.run(cfg)
    teacher.run(cfg)
    trajectories.run(cfg)
    seme.run(cfg, variant="dcm")
    dete.run(cfg, variant="dcm")
    from dcm.backbones.wan import WanBackbone

    events = []  # the sample stage frees the text encoders before it loads the students
    for method in ("release_text_encoders", "load_network"):
        original = getattr(WanBackbone, method)
        monkeypatch.setattr(WanBackbone, method, lambda self, *a, m=method, f=original: events.append(m) or f(self, *a))
    sample.run(cfg, method="dcm", steps=2)
    assert events == ["release_text_encoders", "load_network"]  # SemE, carrying the DetE LoRA
    out = tmp_path / "results" / "wan2.1-t2v-1.3b"
    split = read_json(out / "dataset" / "prompts.json")
    assert len(split["train"]) == 2 and len(split["eval"]) == 1
    assert read_json(out / "teacher" / "network" / "pretrained.json")["pretrained"] == str((tmp_path / "wan").resolve())
    assert not (out / "teacher" / "network" / "config.json").exists()  # a pointer, not a copy of the weights
    manifest = read_json(out / "trajectories" / "manifest.json")
    assert manifest["count"] == 2 and manifest["latent_shape"] == [4, 2, 4, 4]
    assert sorted(p for s in manifest["shards"] for p in s["prompts"]) == sorted(split["train"])
    samples = load_tensors(out / "samples" / "dcm-2" / "samples.safetensors")
    assert samples["videos"].dtype == torch.uint8 and samples["videos"].shape == (1, 5, 32, 32, 3)
    assert samples["latents"].isfinite().all()
