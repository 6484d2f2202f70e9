"""Export to stock diffusers pipelines: WanPipeline, HunyuanVideoPipeline and CogVideoXPipeline.from_pretrained on
the exported directory sample the same video as the project's own few-step sampler from the same noise, for DCM
(SemE + merged DetE) and PCM."""

import copy

import pytest
import torch
from diffusers import WanPipeline

from dcm.backbones import pretrained_adapter
from dcm.errors import DCMError
from dcm.experts import Expert, attach_detail_expert
from dcm.export import (FewStepFlowMatchScheduler, boundary_ratio, merged_detail_network, phase_schedule_config,
                        wan_pipeline)
from dcm.sampling import euler_sample, two_expert_sample
from dcm.schedule import PhaseSchedule
from tests.helpers import project_sampler
from tests.test_backbones import SHAPE, build_wan

N, KAPPA = 8, 4
PHASES = PhaseSchedule(N, KAPPA, 3.0, 4)  # 4 PCM phases


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """(backbone, SemE network, DetE expert) on a tiny random Wan; DetE's LoRA and copied layers made non-zero."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wan")
    build_wan(path)
    backbone = pretrained_adapter("wan")({"pretrained": str(path), "device": "cpu", **SHAPE})
    semantic = backbone.load_network(path / "transformer").eval().requires_grad_(False)
    detail = attach_detail_expert(copy.deepcopy(semantic), backbone, rank=2, alpha=4)
    with torch.no_grad():
        for name, p in detail.named_parameters():
            if "lora_B" in name or name.startswith("detail."):
                p.add_(0.05 * torch.randn_like(p))
    return backbone, semantic, detail.eval().requires_grad_(False)


def _pipeline_latents(directory, noise, cond, steps):
    pipe = WanPipeline.from_pretrained(str(directory))
    assert isinstance(pipe.scheduler, FewStepFlowMatchScheduler)
    out = pipe(prompt_embeds=cond, latents=noise, num_inference_steps=steps, guidance_scale=1.0, num_frames=5,
               height=32, width=32, output_type="latent")
    return out.frames


def test_exported_dcm_samples_like_the_project_sampler(wan, tmp_path):
    backbone, semantic, detail = wan
    sigmas = PHASES.sigmas
    cond = backbone.encode_prompts(["a red cat runs", "the dog walks"])
    noise = torch.randn(2, *backbone.latent_shape, generator=torch.Generator().manual_seed(1))
    scheduler = FewStepFlowMatchScheduler(grid_sigmas=sigmas.tolist(), phase_schedule=phase_schedule_config(PHASES),
                                          cut="experts", grid_timesteps=backbone.model_timestep(sigmas).tolist())
    merged = merged_detail_network(copy.deepcopy(detail))
    assert not any("lora" in name for name, _ in merged.named_parameters())
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.full((2,), float(sigmas[2]))
    want = detail(backbone, x, sigma, cond)
    assert torch.allclose(backbone.predict(merged, x, sigma, cond), want, atol=1e-5)
    wan_pipeline(backbone, semantic, scheduler, merged, boundary_ratio(sigmas, KAPPA)).save_pretrained(tmp_path / "dcm")
    for steps in (4, 2):
        ours = two_expert_sample(Expert(semantic).velocity_fn(backbone), detail.velocity_fn(backbone), noise, cond,
                                 sigmas, PHASES.few_step("experts", steps), PHASES.sigma_kappa,
                                 lambda: detail.semantic_phase(Expert(semantic)), detail.phase)
        theirs = _pipeline_latents(tmp_path / "dcm", noise, cond, steps)
        assert torch.allclose(theirs, ours, atol=1e-5), (theirs - ours).abs().max()
    only_semantic = euler_sample(Expert(semantic).velocity_fn(backbone), noise, cond, sigmas,
                                 PHASES.few_step("experts", 4))
    assert not torch.allclose(only_semantic, ours, atol=1e-3)  # DetE really ran below kappa
    with pytest.raises(DCMError, match="not a multiple of the 2 phases"):
        _pipeline_latents(tmp_path / "dcm", noise, cond, 3)


def test_exported_pcm_samples_like_the_project_sampler(wan, tmp_path):
    backbone, semantic, _ = wan
    cond = backbone.encode_prompts(["a red cat runs"])
    noise = torch.randn(1, *backbone.latent_shape, generator=torch.Generator().manual_seed(2))
    scheduler = FewStepFlowMatchScheduler(grid_sigmas=PHASES.sigmas.tolist(),
                                          phase_schedule=phase_schedule_config(PHASES), cut="pcm",
                                          grid_timesteps=backbone.model_timestep(PHASES.sigmas).tolist())
    wan_pipeline(backbone, semantic, scheduler).save_pretrained(tmp_path / "pcm")
    ours = euler_sample(Expert(semantic).velocity_fn(backbone), noise, cond, PHASES.sigmas, PHASES.few_step("pcm", 4))
    assert torch.allclose(_pipeline_latents(tmp_path / "pcm", noise, cond, 4), ours, atol=1e-5)


def _random_pretrained_run(tmp_path, config_name: str, build, num_steps: int, kappa: int) -> tuple:
    """(config, backbone, teacher network) of a run of `config_name` on a tiny random pipeline of its backbone,
    sampling 4 and 8 steps."""
    from dcm.backbones import load_teacher, teacher_network_dir
    from dcm.backbones.diffusers_backbone import write_pointer
    from dcm.config import load_config
    from tests.test_backbones import REPO

    torch.manual_seed(0)
    build(tmp_path / "pipeline")
    cfg = load_config(REPO / "config" / config_name, [
        f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'pipeline'}", "backbone.dtype=float32",
        "backbone.device=cpu", "backbone.frames=5", "backbone.height=32", "backbone.width=32",
        "backbone.max_sequence_length=8", f"schedule.num_steps={num_steps}", f"schedule.kappa={kappa}",
        "sampling.steps=[4, 8]", f"sampling.teacher_steps={num_steps}", "tracking.enabled=false"])
    write_pointer(teacher_network_dir(cfg), tmp_path / "pipeline")
    return (cfg, *load_teacher(cfg))


def test_export_stage_writes_pcms_network_of_the_first_step_count_with_its_phase_count(tmp_path):
    """With pcm.phases 'steps', `export --method pcm` takes the 4-phase network that PCM-4 samples (sampling.steps[0])
    and its scheduler keeps those 4 phases: 4 pipeline steps are the project's PCM-4 sampler."""
    from dcm import layout
    from dcm.stages import export

    cfg, backbone, teacher_net = _random_pretrained_run(tmp_path, "wan2.1-t2v-1.3b.yaml", build_wan, N, KAPPA)
    backbone.save_network(teacher_net, layout.phased_trainer_dir(layout.run_dir(cfg), "pcm", 4) / layout.NETWORK)
    export.run(cfg, method="pcm")
    directory = layout.run_dir(cfg) / "export" / "pcm"
    assert WanPipeline.from_pretrained(str(directory)).scheduler.config.phase_schedule["pcm_phases"] == 4
    cond = backbone.encode_prompts(["a red cat runs"])
    noise = torch.randn(1, *backbone.latent_shape, generator=torch.Generator().manual_seed(2))
    ours = project_sampler(cfg, "pcm", 4, backbone)(noise, cond, [2])
    assert torch.allclose(_pipeline_latents(directory, noise, cond, 4), ours, atol=1e-5)


def _export_random_dcm(tmp_path, config_name: str, build, num_steps: int = N, kappa: int = KAPPA) -> tuple[dict, object]:
    """(config, backbone) after the export stage ran on a tiny random pipeline of `config_name`'s backbone, with
    the teacher as SemE and a random DetE (non-zero LoRA and copied layers) as the seme and dete stages' files."""
    from dcm import layout
    from dcm.experts import detail_state_dict
    from dcm.io import save_tensors, write_json
    from dcm.stages import export

    cfg, backbone, teacher_net = _random_pretrained_run(tmp_path, config_name, build, num_steps, kappa)
    point = layout.own_point(cfg)
    backbone.save_network(copy.deepcopy(teacher_net), layout.seme_dir(point, True) / layout.NETWORK)
    detail = attach_detail_expert(copy.deepcopy(teacher_net), backbone, rank=2, alpha=4)
    with torch.no_grad():
        for name, p in detail.named_parameters():
            if "lora_B" in name or name.startswith("detail."):
                p.add_(0.05 * torch.randn_like(p))
    save_tensors(layout.dete_dir(point, "dcm") / layout.DETAIL_WEIGHTS, detail_state_dict(detail))
    write_json(layout.dete_dir(point, "dcm") / layout.DETAIL_CONFIG, {"lora_rank": 2, "lora_alpha": 4, "seme": "x"})
    export.run(cfg, method="dcm")
    return cfg, backbone


def test_hunyuan_export_stage_samples_like_the_project_sampler(tmp_path):
    """The export stage on HunyuanVideo: SemE as the pipeline's transformer, DetE in transformer_2/ swapped in by
    ExpertSwitch, the grid sigmas passed to the call; the same latents as the project's `sample` sampler."""
    import json

    from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel

    from dcm import layout
    from dcm.backbones.hunyuan_video import unpack_condition
    from dcm.export import ExpertSwitch
    from tests.test_backbones import build_hunyuan_video

    cfg, backbone = _export_random_dcm(tmp_path, "hunyuanvideo.yaml", build_hunyuan_video)
    directory = layout.run_dir(cfg) / "export" / "dcm"
    plan = json.loads((directory / "few_step.json").read_text())
    assert sorted(plan["sigmas"]) == ["4", "8"] and plan["boundary_timestep"] > 0
    pipe = HunyuanVideoPipeline.from_pretrained(str(directory))
    dete = HunyuanVideoTransformer3DModel.from_pretrained(str(directory), subfolder="transformer_2")
    cond = backbone.encode_prompts(["a red cat runs"])
    embeds, mask, pooled = unpack_condition(cond, pipe.transformer.config.pooled_projection_dim)
    noise = torch.randn(1, *backbone.latent_shape, generator=torch.Generator().manual_seed(3))
    ours = project_sampler(cfg, "dcm", 4, backbone)(noise, cond, [3])
    kwargs = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, prompt_attention_mask=mask, latents=noise,
                  num_inference_steps=4, sigmas=plan["sigmas"]["4"], guidance_scale=cfg["backbone"]["guidance"]["scale"],
                  num_frames=5, height=32, width=32, output_type="latent")
    theirs = pipe(**kwargs, callback_on_step_end=ExpertSwitch(dete, plan["boundary_timestep"])).frames
    assert torch.allclose(theirs, ours, atol=1e-5), (theirs - ours).abs().max()
    semantic_only = pipe(**kwargs).frames
    assert not torch.allclose(semantic_only, ours, atol=1e-3)  # without the switch DetE never runs
    assert pipe.transformer is not dete  # the switch put SemE back after the last step


def test_cogvideox_export_stage_samples_like_the_project_sampler(tmp_path):
    """The export stage on CogVideoX: a stock CogVideoXPipeline whose few-step DDIM scheduler steps between the
    grid's integer DDPM timesteps, DetE swapped in by ExpertSwitch; the same latents as the project's sampler,
    which takes flow Euler steps between the same grid points, at 4 and 8 steps. Kappa 5 of 10 makes the steps
    uneven, which the stock scheduler's fixed stride (num_train_timesteps // steps) cannot take."""
    import json

    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    from dcm import layout
    from dcm.export import ExpertSwitch, FewStepCogVideoXDDIMScheduler
    from tests.test_backbones import build_cogvideox

    cfg, backbone = _export_random_dcm(tmp_path, "cogvideox-2b.yaml", build_cogvideox, num_steps=10, kappa=5)
    directory = layout.run_dir(cfg) / "export" / "dcm"
    plan = json.loads((directory / "few_step.json").read_text())
    assert plan == {"boundary_timestep": 549.0}  # midway between the grid's timesteps 499 (kappa = 5) and 599
    pipe = CogVideoXPipeline.from_pretrained(str(directory))
    assert isinstance(pipe.scheduler, FewStepCogVideoXDDIMScheduler)
    dete = CogVideoXTransformer3DModel.from_pretrained(str(directory), subfolder="transformer_2")
    cond = backbone.encode_prompts(["a red cat runs", "the dog walks"])
    noise = torch.randn(2, *backbone.latent_shape, generator=torch.Generator().manual_seed(3))
    kwargs = dict(prompt_embeds=cond, latents=noise.transpose(1, 2), guidance_scale=1.0, num_frames=5, height=32,
                  width=32, output_type="latent")
    for steps in (4, 8):
        ours = project_sampler(cfg, "dcm", steps, backbone)(noise, cond, [3, 4])
        theirs = pipe(**kwargs, num_inference_steps=steps,
                      callback_on_step_end=ExpertSwitch(dete, plan["boundary_timestep"])).frames.transpose(1, 2)
        assert torch.allclose(theirs, ours, atol=1e-5), (theirs - ours).abs().max()
        if steps == 4:
            assert pipe.scheduler.timesteps.tolist() == [999, 799, 499, 199]  # grid indices 10, 8, 5, 2
    semantic_only = pipe(**kwargs, num_inference_steps=8).frames.transpose(1, 2)
    assert not torch.allclose(semantic_only, ours, atol=1e-3)  # without the switch DetE never runs
