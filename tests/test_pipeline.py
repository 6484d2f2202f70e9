"""Every stage end to end on the smoke config, through the real command line."""

import json

import torch
import yaml

from dcm.config import load_config
from dcm.io import load_tensors, read_json, sha256
from dcm.sampling import seeded_noise
from dcm.solvers import teacher_sigmas
from dcm.stages.trajectories import TRAJECTORY_SEED_OFFSET
from tests.helpers import SMOKE, dcm

METHODS = {"teacher-10", "teacher-2", "teacher-4", "lcm-2", "lcm-4", "pcm-2", "pcm-4", "vcm-2", "vcm-4",
           "dcm-2", "dcm-4"}


def test_every_stage_wrote_its_outputs(smoke_run):
    for stage in ("dataset", "teacher", "trajectories", "seme/tc", "seme/plain", "dete/dcm", "dete/od", "vcm", "lcm",
                  "pcm", "weightdiff", "compare"):
        assert (smoke_run / stage / "config.resolved.yaml").is_file(), stage
    assert {p.name for p in (smoke_run / "samples").iterdir()} == METHODS
    assert not list(smoke_run.rglob("*.partial")) and not list(smoke_run.rglob("checkpoint"))
    assert (smoke_run / "teacher" / "samples_eval.gif").stat().st_size > 0


def test_resolved_config_has_defaults_filled(smoke_run):
    resolved = yaml.safe_load((smoke_run / "seme" / "tc" / "config.resolved.yaml").read_text())
    assert resolved["distill"]["huber_c"] == 0.001 and resolved["schedule"]["kappa"] == 6


def test_training_logged_every_step(smoke_run):
    lines = [json.loads(x) for x in (smoke_run / "dete" / "dcm" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert {"consistency", "g_adv", "fm", "d_loss", "grad_norm"} <= set(lines[0])
    seme = [json.loads(x) for x in (smoke_run / "seme" / "tc" / "metrics.jsonl").read_text().splitlines()]
    assert "temporal_coherence" in seme[0]
    assert all(6 < x["index"] <= 10 for x in seme)  # SemE trains only on (kappa, N]


def test_parameter_efficient_checkpoint_holds_only_new_parameters(smoke_run):
    keys = load_tensors(smoke_run / "dete" / "dcm" / "detail_expert.safetensors")
    assert keys and all("lora_" in k or k.startswith("detail.") for k in keys)
    assert not (smoke_run / "dete" / "dcm" / "network").exists()


def test_trajectory_cache_is_the_teacher_ode(smoke_run):
    manifest = read_json(smoke_run / "trajectories" / "manifest.json")
    shard = manifest["shards"][0]
    assert sha256(smoke_run / "trajectories" / shard["file"]) == shard["sha256"]
    latents = load_tensors(smoke_run / "trajectories" / shard["file"])["latents"]
    assert latents.dtype == torch.float16 and latents.shape[1] == 11
    noise = seeded_noise(tuple(manifest["latent_shape"]), shard["seeds"][:2])
    assert shard["seeds"][0] == TRAJECTORY_SEED_OFFSET
    assert torch.allclose(latents[:2, 10].float(), noise, atol=1e-2)  # index N is the starting noise


def test_trajectory_steps_are_teacher_euler_steps(smoke_run):
    from dcm.stages.common import load_teacher

    cfg = load_config(SMOKE, [f"results_dir={smoke_run.parent}"])
    backbone, teacher = load_teacher(cfg)
    manifest = read_json(smoke_run / "trajectories" / "manifest.json")
    shard = manifest["shards"][0]
    latents = load_tensors(smoke_run / "trajectories" / shard["file"])["latents"][:2].float()
    cond = backbone.encode_prompts(shard["prompts"][:2])
    sigmas = teacher_sigmas(10, 1.0)
    i = 7
    with torch.no_grad():
        v = backbone.predict(teacher, latents[:, i], sigmas[i].float().expand(2), cond)
    stepped = latents[:, i] + (sigmas[i - 1] - sigmas[i]).float() * v
    assert torch.allclose(stepped, latents[:, i - 1], atol=2e-2)


def test_comparison_table_lists_every_sample_set(smoke_run):
    rows = read_json(smoke_run / "compare" / "distances.json")["rows"]
    assert {r["samples"] for r in rows} == METHODS
    reference = next(r for r in rows if r["samples"] == "teacher-10")
    assert reference["pixel_rmse"] == 0 and reference["feature_distance"] == 0
    assert all(r["pixel_rmse"] > 0 for r in rows if r["samples"] != "teacher-10")
    assert all(0 <= r["closer_than_teacher_same_steps"] <= 1 for r in rows if r["method"] != "teacher")
    assert all(r["pixel_rmse_seed_std"] == 0 for r in rows)  # the smoke config samples one seed
    assert (smoke_run / "compare" / "distances.md").read_text().startswith("| samples")


def test_sample_schedules_are_recorded(smoke_run):
    assert read_json(smoke_run / "samples" / "dcm-4" / "meta.json")["schedule"] == [10, 8, 6, 3, 0]
    assert read_json(smoke_run / "samples" / "pcm-4" / "meta.json")["schedule"] == [10, 8, 5, 2, 0]  # 7.5 and 2.5 round half to even
    assert read_json(smoke_run / "samples" / "teacher-10" / "meta.json")["schedule"] == list(range(10, -1, -1))


def test_second_run_does_nothing(smoke_run):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*.safetensors")}
    proc = dcm("all", results=smoke_run.parent)
    assert proc.stderr.count("skip ") >= 15
    assert before == {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*.safetensors")}


def test_weight_difference_of_the_two_full_experts(smoke_run):
    result = read_json(smoke_run / "weightdiff" / "weight_difference.json")
    assert set(result["groups"]) == {"timestep-dependent (Psi)", "attention linears (Lambda)", "other"}
    assert all(g["normalised_l1"] > 0 for g in result["groups"].values())
    assert (smoke_run / "weightdiff" / "fig5_weight_difference.png").read_bytes()[:4] == b"\x89PNG"
