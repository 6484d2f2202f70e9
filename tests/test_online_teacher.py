"""Online teacher mode: pairs are a data latent noised to t_n and one teacher Euler step from it, in closed form;
the latents stage encodes a folder of videos (frame folders, GIF) with the VAE; SemE and DetE train online on a
tiny random Wan pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from dcm.config import load_config
from dcm.errors import DCMError
from dcm.solvers import teacher_sigmas
from dcm.trajectories import OnlineTeacher, TrajectoryCache
from dcm.video import read_video
from tests.helpers import project_sampler, write_cache
from tests.test_backbones import REPO, build_wan

SHAPE = (3, 2, 4, 4)


def test_online_pairs_are_the_noised_latent_and_one_teacher_euler_step(tmp_path):
    torch.manual_seed(0)
    x0, cond = torch.randn(3, 1, *SHAPE).half(), torch.randn(3, 2, 5).half()
    write_cache(tmp_path / "latents", x0, cond, ["a", "b", "c"], shard_size=2)
    sigmas = teacher_sigmas(8, 3.0)
    calls = []

    def velocity(x, sigma, c):  # a known field: v = 2 x - sigma (per sample), recording each call
        calls.append(len(x))
        return 2 * x - sigma.view(-1, 1, 1, 1, 1)

    source = OnlineTeacher(TrajectoryCache.load(tmp_path / "latents"), velocity, sigmas)
    assert source.num_steps == 8
    x_n, x_prev, n, c = source.sampler(2, 8, 4)(torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)  # the same draws by hand: k, n, then the noise
    k = torch.randint(3, (4,), generator=generator)
    n_ref = torch.randint(3, 9, (4,), generator=generator)
    eps = torch.randn(4, *SHAPE, generator=generator)
    s_n, s_prev = sigmas[n_ref].float().view(-1, 1, 1, 1, 1), sigmas[n_ref - 1].float().view(-1, 1, 1, 1, 1)
    want_n = s_n * eps + (1 - s_n) * x0[k, 0].float()
    want_prev = want_n + (s_prev - s_n) * (2 * want_n - s_n)
    assert torch.equal(n, n_ref) and torch.equal(c, cond[k].float())
    assert torch.allclose(x_n, want_n, atol=1e-6) and torch.allclose(x_prev, want_prev, atol=1e-6)
    assert calls == [4]  # one teacher forward per batch
    with pytest.raises(DCMError, match="outside the teacher grid"):
        source.sampler(0, 9, 2)


def _write_videos(folder):
    """Two training videos: a folder of PNG frames and an animated GIF, 6 frames of 40 x 48, with captions."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 6, 40, 48, 3), dtype=np.uint8)
    (folder / "clip_a").mkdir()
    for t, frame in enumerate(frames[0]):
        Image.fromarray(frame).save(folder / "clip_a" / f"{t:03d}.png")
    (folder / "clip_a.txt").write_text("a red cat runs\n")
    images = [Image.fromarray(f) for f in frames[1]]
    images[0].save(folder / "clip_b.gif", save_all=True, append_images=images[1:], duration=100)
    (folder / "clip_b.txt").write_text("the dog walks\n")
    return frames


def test_read_video_takes_the_first_frames_scaled_and_centre_cropped(tmp_path):
    frames = _write_videos(tmp_path / "videos")
    clip = read_video(tmp_path / "videos" / "clip_a", 5, 40, 40)  # same height: a crop of 4 columns each side
    assert clip.dtype == torch.uint8 and torch.equal(clip, torch.from_numpy(frames[0, :5, :, 4:44]))
    assert read_video(tmp_path / "videos" / "clip_b.gif", 5, 32, 32).shape == (5, 32, 32, 3)
    with pytest.raises(DCMError, match="has 6 frames, fewer than backbone.frames=7"):
        read_video(tmp_path / "videos" / "clip_a", 7, 32, 32)


def test_latents_stage_without_pyav_names_the_mp4_and_the_fix_before_any_work(tmp_path, monkeypatch):
    """No teacher, no VAE loaded: the missing PyAV is the first and only error (av hidden if it is installed)."""
    import sys

    from dcm.stages import latents
    from tests.helpers import SMOKE

    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    _write_videos(tmp_path / "videos")
    (tmp_path / "videos" / "clip_c.mp4").write_bytes(b"")
    (tmp_path / "videos" / "clip_c.txt").write_text("a cat\n")
    cfg = load_config(SMOKE, [f"results_dir={tmp_path / 'results'}", "tracking.enabled=false",
                              "trajectories.mode=online", f"trajectories.videos={tmp_path / 'videos'}"])
    with pytest.raises(DCMError) as err:
        latents.run(cfg)
    assert str(err.value) == (f"{tmp_path / 'videos' / 'clip_c.mp4'}: reading .mp4 videos needs PyAV (pip install "
                              "av), or give frame folders or GIFs")
    assert not (tmp_path / "results").exists()


def test_wan_online_mode_trains_seme_and_dete_and_exports_them(tmp_path):
    """dataset -> teacher -> latents -> seme -> dete with trajectories.mode=online on a tiny random Wan, no cache;
    then the export stage, whose directory WanPipeline loads and samples like the project's sample stage."""
    from diffusers import WanPipeline

    from dcm.backbones import load_backbone
    from dcm.io import read_json
    from dcm.sampling import seeded_noise
    from dcm.backbones import load_teacher
    from dcm.stages import dataset, dete, export, latents, seme, teacher

    torch.manual_seed(0)
    build_wan(tmp_path / "wan")
    _write_videos(tmp_path / "videos")
    (tmp_path / "prompts.txt").write_text("a red cat runs\nthe dog walks\nblue sea\n")
    cfg = load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", [
        f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'wan'}", "backbone.dtype=float32",
        "backbone.device=cpu", "backbone.frames=5", "backbone.height=32", "backbone.width=32",
        "backbone.max_sequence_length=8", f"data.prompt_file={tmp_path / 'prompts.txt'}", "data.holdout_prompts=1",
        "schedule.num_steps=8", "schedule.kappa=4", "sampling.teacher_steps=8", "threads=2", "tracking.enabled=false",
        "trajectories.mode=online", f"trajectories.videos={tmp_path / 'videos'}", "trajectories.shard_size=1",
        "seme.steps=2", "seme.batch_size=2", "seme.checkpoint_every=1", "dete.steps=2", "dete.batch_size=2",
        "dete.checkpoint_every=1", "dete.lora_rank=2", "dete.lora_alpha=4"])
    dataset.run(cfg)
    teacher.run(cfg)
    with pytest.raises(DCMError, match="run the 'latents' stage first"):
        seme.run(cfg, variant="dcm")
    latents.run(cfg)
    out = tmp_path / "results" / "wan2.1-t2v-1.3b"
    store = TrajectoryCache.load(out / "latents")
    assert len(store) == 2 and store.prompts == ["a red cat runs", "the dog walks"]
    backbone = load_backbone(cfg, out / "teacher" / "network")
    encoded = backbone.encode_video(read_video(tmp_path / "videos" / "clip_a", 5, 32, 32)[None])
    assert torch.equal(store.states(0, 0, 1).float(), encoded.half().float())  # the VAE latent of the video
    seme.run(cfg, variant="dcm")
    dete.run(cfg, variant="dcm")
    assert not (out / "trajectories").exists()  # nothing cached: the teacher ran online
    for stage in ("seme/tc", "dete/dcm"):
        metrics = [line for line in (out / stage / "metrics.jsonl").read_text().splitlines() if line]
        assert len(metrics) == 2
    assert read_json(out / "dete" / "dcm" / "detail_expert.json")["lora_rank"] == 2

    export.run(cfg, method="dcm")
    pipe = WanPipeline.from_pretrained(str(out / "export" / "dcm"))
    backbone, _ = load_teacher(cfg)
    sampler = project_sampler(cfg, "dcm", 4, backbone)
    noise, cond = seeded_noise(backbone.latent_shape, [7]), backbone.encode_prompts(["a red cat runs"])
    theirs = pipe(prompt_embeds=cond, latents=noise, num_inference_steps=4, guidance_scale=1.0, num_frames=5,
                  height=32, width=32, output_type="latent").frames
    assert torch.allclose(theirs, sampler(noise, cond, [7]), atol=1e-5)
    with pytest.raises(DCMError, match="export --method lcm"):
        export.run(cfg, method="lcm")

    cfg_videos = load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", [
        f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'wan'}",
        f"data.prompt_file={tmp_path / 'prompts.txt'}", f"trajectories.videos={tmp_path / 'nowhere'}",
        "data.holdout_prompts=1", "schedule.num_steps=8", "schedule.kappa=4", "sampling.teacher_steps=8"])
    with pytest.raises(DCMError, match="trajectories.videos=.*nowhere.* is not a folder"):
        latents.run(cfg_videos)
