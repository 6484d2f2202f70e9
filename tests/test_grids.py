"""Each real backbone's teacher grid against its diffusers pipeline run on a small random pipeline (the timesteps
the pipeline feeds its transformer, the scheduler's sigmas), and the guided teacher velocity against the
pipeline's own classifier-free guidance combination inside that run."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dcm.backbones import pretrained_adapter
from dcm.backbones.cogvideox import ddpm_coefficients, flow_velocity
from dcm.config import load_config
from dcm.errors import DCMError
from dcm.grids import backbone_grid, grid
from dcm.pipelines import guidance
from dcm.solvers import teacher_sigmas
from tests.test_backbones import BUILDERS, SHAPE

REPO = Path(__file__).resolve().parents[1]
N = 4
PROMPT = "a red cat runs"
SHIFTS = {"wan": 3.0, "hunyuan_video": 7.0, "cogvideox": 1.0}  # the schedulers the test pipelines were built with


def run_pipeline(name: str, path: Path, steps: int):
    """Run the diffusers pipeline at `path` as a user would (latent output) and record, per denoising step, the
    transformer's timestep inputs and guidance, and what the scheduler's step received (guided output, t, sample)."""
    import diffusers

    pipe_class = {"wan": "WanPipeline", "hunyuan_video": "HunyuanVideoPipeline", "cogvideox": "CogVideoXPipeline"}
    pipe = getattr(diffusers, pipe_class[name]).from_pretrained(str(path))
    calls, steps_seen = [], []
    pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append({k: kw.get(k) for k in ("timestep", "guidance")}), with_kwargs=True)
    step = pipe.scheduler.step

    def recording_step(model_output, timestep, sample, *args, **kwargs):
        steps_seen.append((model_output.clone(), timestep, sample.clone()))
        return step(model_output, timestep, sample, *args, **kwargs)

    pipe.scheduler.step = recording_step
    pipe(prompt=PROMPT, height=SHAPE["height"], width=SHAPE["width"], num_frames=SHAPE["frames"],
         num_inference_steps=steps, max_sequence_length=SHAPE["max_sequence_length"], output_type="latent",
         generator=torch.Generator().manual_seed(0))
    return pipe, calls, steps_seen


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pipeline_run(request, tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param](path)
    return (request.param, path, *run_pipeline(request.param, path, N))


def test_grid_is_what_the_pipeline_feeds_its_transformer(pipeline_run):
    name, path, pipe, calls, _ = pipeline_run
    sigmas, timesteps = backbone_grid(name, N, SHIFTS[name])
    fed = [float(c["timestep"].flatten()[0]) for c in calls]
    per_step = fed[::2] if name == "wan" else fed  # WanPipeline calls the transformer twice per step (cond, uncond)
    assert per_step == timesteps[:0:-1].tolist()  # grid indices N..1, exactly
    assert len(sigmas) == len(timesteps) == N + 1 and sigmas[0] == 0 and (np.diff(sigmas) > 0).all()
    if name == "cogvideox":  # the flow level of each DDIM timestep: sigma / (1 - sigma) = sqrt((1 - ab) / ab)
        ab = pipe.scheduler.alphas_cumprod.double()[torch.tensor(timesteps[1:]).long()].numpy()
        assert np.allclose((1 - sigmas[1:]) * np.sqrt(1 - ab), sigmas[1:] * np.sqrt(ab), atol=1e-12)
        assert sigmas[N] == 1.0  # zero terminal SNR at t = 999
    else:
        assert np.array_equal(sigmas[::-1], pipe.scheduler.sigmas.double().numpy())
    backbone = pretrained_adapter(name)({"pretrained": str(path), **SHAPE})
    own_sigmas, own_timesteps = backbone.grid(N, SHIFTS[name])
    assert np.array_equal(own_sigmas.numpy(), sigmas) and np.array_equal(own_timesteps.numpy(), timesteps)
    # the adapter's own timestep input at each grid level is the pipeline's (float32 levels, as sampling uses them)
    assert torch.allclose(backbone.model_timestep(own_sigmas[1:].float()).double(), own_timesteps[1:], atol=1e-3)


def test_guided_teacher_velocity_is_the_pipelines_combination(pipeline_run):
    name, path, pipe, calls, steps_seen = pipeline_run
    backbone = pretrained_adapter(name)({"pretrained": str(path), **SHAPE})
    net = pipe.transformer.eval()
    sigmas, _ = backbone_grid(name, N, SHIFTS[name])
    cond = backbone.encode_prompts([PROMPT])
    for k, (guided, t, sample) in enumerate(steps_seen):
        sigma = torch.tensor([sigmas[N - k]], dtype=torch.float32)
        with torch.no_grad():
            if name == "cogvideox":  # the pipeline guides the v-prediction at x_t = x / r; the adapter, eps - x0
                a, b, r = ddpm_coefficients(sigma)
                ours = backbone.guided_predict(net, sample.transpose(1, 2) * r.float(), sigma, cond)
                theirs = flow_velocity(sample.transpose(1, 2), guided.transpose(1, 2), a, b)
                unguided = backbone.predict(net, sample.transpose(1, 2) * r.float(), sigma, cond)
            else:
                ours, theirs = backbone.guided_predict(net, sample, sigma, cond), guided
                unguided = backbone.predict(net, sample, sigma, cond)
        assert torch.allclose(ours, theirs.to(ours), atol=1e-5, rtol=1e-4), (name, k, (ours - theirs).abs().max())
        if name == "hunyuan_video":  # embedded guidance: one call per step, guidance input 1000 g
            assert torch.equal(ours, unguided)
            assert float(calls[k]["guidance"][0]) == 6000.0
        else:  # the combination differs from the conditional velocity by far more than the tolerance
            assert (ours - unguided).abs().max() > 100 * 1e-5


def test_real_configs_grid_choices():
    def cfg(name):
        return load_config(REPO / "config" / f"{name}.yaml", [])

    sigmas, timesteps = grid(cfg("cogvideox-2b"))
    assert timesteps[1:].tolist() == list(range(19, 1000, 20)) and timesteps[37] == 739  # the DDIM trailing grid
    sigmas, timesteps = grid(cfg("hunyuanvideo"))
    assert sigmas[1] == pytest.approx(17 * 0.02 / (1 + 16 * 0.02), abs=1e-6)  # shift 17 applied once: 0.258
    sigmas, timesteps = grid(cfg("wan2.1-t2v-1.3b"))
    s = 1 - 49 * (1 - 1 / 1000) / 50  # linspace(1, 1/1000, 51)[49], shifted once by 3 (UniPC flow sigmas)
    assert sigmas[1] == pytest.approx(3 * s / (1 + 2 * s), abs=1e-6) and timesteps[1] == 60
    assert [guidance(cfg(n)["backbone"]) for n in ("hunyuanvideo", "wan2.1-t2v-1.3b", "cogvideox-2b")] == [
        {"kind": "embedded", "scale": 6.0, "negative_prompt": ""}, {"kind": "cfg", "scale": 5.0, "negative_prompt": ""},
        {"kind": "cfg", "scale": 6.0, "negative_prompt": ""}]


def test_tiny_grid_is_unchanged_and_bad_keys_are_named():
    # the tiny grid stays diffusers' FlowMatchEulerDiscreteScheduler(shift).set_timesteps(N): sigma_1 = 0.001
    assert teacher_sigmas(10, 1.0).tolist() == pytest.approx([0.0, *np.linspace(0.001, 1, 10)], abs=1e-7)
    with pytest.raises(DCMError, match="schedule.shift=3.0: backbone.name=cogvideox"):
        backbone_grid("cogvideox", 50, 3.0)
    with pytest.raises(DCMError, match="backbone.guidance.kind='cfg' is not available for backbone.name=hunyuan_video"):
        guidance({"name": "hunyuan_video", "guidance": {"kind": "cfg"}})
    with pytest.raises(DCMError, match="backbone.guidance.scale=0.5"):
        guidance({"name": "wan", "guidance": {"scale": 0.5}})
