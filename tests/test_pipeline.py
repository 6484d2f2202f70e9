"""Every stage end to end on the smoke config, through the real command line."""

import json

import pandas as pd
import pytest
import torch
import yaml

from dcm.config import load_config
from dcm.io import load_tensors, read_json, sha256
from dcm.sampling import seeded_noise
from dcm.solvers import teacher_sigmas
from dcm.stages.trajectories import TRAJECTORY_SEED_OFFSET
from tests.helpers import SMOKE

METHODS = {"teacher-10", "teacher-4", "lcm-4", "pcm-4", "vcm-4", "od-4", "dcm-4", "seme+vcm-4", "vcm+dete-4"}


def test_every_stage_wrote_its_outputs(smoke_run):
    for stage in ("dataset", "teacher", "trajectories", "seme/tc", "seme/plain", "dete/dcm", "dete/od", "vcm", "lcm",
                  "pcm/4", "weightdiff", "compare"):
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
    full = [json.loads(x) for x in (smoke_run / "dete" / "od" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["lr"] == 5e-4 and full[0]["lr"] == 1e-4  # LoRA at dete.lr, a whole DetE (OD) at dete.full_lr
    seme = [json.loads(x) for x in (smoke_run / "seme" / "tc" / "metrics.jsonl").read_text().splitlines()]
    assert "temporal_coherence" in seme[0] and all(0 < x["tc_share"] < 1 for x in seme)  # seme.tc_share: true
    assert all(0 <= x[k] <= 1 for x in lines for k in ("d_real_acc", "d_fake_acc"))
    assert all(6 < x["index"] <= 10 for x in seme)  # SemE trains only on (kappa, N]


def test_parameter_efficient_checkpoint_holds_only_new_parameters(smoke_run):
    keys = load_tensors(smoke_run / "dete" / "dcm" / "detail_expert.safetensors")
    assert keys and all("lora_" in k or k.startswith("detail.") for k in keys)
    assert not (smoke_run / "dete" / "dcm" / "network").exists()
    # what Table 3's parameter column reads: the checkpoint's own count for PE, a whole network for OD
    added = read_json(smoke_run / "dete" / "dcm" / "parameters.json")
    assert added["extra"] == sum(v.numel() for v in keys.values()) and 0 < added["extra"] < added["backbone"]
    od = read_json(smoke_run / "dete" / "od" / "parameters.json")
    assert od["extra"] == od["backbone"] == added["backbone"]


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
    from dcm.backbones import load_teacher

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
    assert reference["pixel_rmse_seed_std"] == 0
    assert all(r["pixel_rmse_seed_std"] > 0 for r in rows if r["samples"] != "teacher-10")  # two noise seeds
    assert (smoke_run / "compare" / "distances.md").read_text().startswith("| samples")


def test_sample_schedules_are_recorded(smoke_run):
    assert read_json(smoke_run / "samples" / "dcm-4" / "meta.json")["schedule"] == [10, 8, 6, 3, 0]
    assert read_json(smoke_run / "samples" / "pcm-4" / "meta.json")["schedule"] == [10, 8, 5, 2, 0]  # 7.5 and 2.5 round half to even
    assert read_json(smoke_run / "samples" / "teacher-10" / "meta.json")["schedule"] == list(range(10, -1, -1))


def test_weight_difference_of_the_two_full_experts(smoke_run):
    result = read_json(smoke_run / "weightdiff" / "weight_difference.json")
    assert set(result["groups"]) == {"timestep-dependent (Psi)", "attention linears (Lambda)", "other"}
    assert all(g["normalised_l1"] > 0 for g in result["groups"].values())
    assert (smoke_run / "weightdiff" / "fig5_weight_difference.png").read_bytes()[:4] == b"\x89PNG"


def test_every_sample_set_is_scored_per_seed(smoke_run):
    for name in METHODS - {"seme+vcm-4", "vcm+dete-4"}:
        scores = read_json(smoke_run / "eval" / name / "scores.json")
        assert scores["backend"] == "tinybench" and len(scores["per_seed"]) == 2, name
        assert 0 <= scores["total"] <= 1 and scores["frechet_to_real"] >= 0, name


def test_table1_latency_is_every_table1_sampler_timed_in_one_job(smoke_run):
    latency = read_json(smoke_run / "latency" / "latency.json")
    assert set(latency["per_video"]) == {"teacher-10", "teacher-4", "lcm-4", "pcm-4", "dcm-4"}
    assert all(t["repeats"] == 2 and t["median_s"] > 0 for t in latency["per_video"].values())
    rows = pd.read_csv(smoke_run / "tables" / "table1" / "table1.csv")
    timed = [latency["per_video"][f"{m}-{s}"]["median_s"] for m, s in zip(rows["method"], rows["steps"])]
    assert rows["latency_s"].tolist() == pytest.approx(timed)
    assert rows["speedup"].tolist() == pytest.approx([latency["speedup"][f"{m}-{s}"]
                                                      for m, s in zip(rows["method"], rows["steps"])])


def test_tables_one_and_three_are_built_from_the_scores(smoke_run):
    import csv

    with open(smoke_run / "tables" / "table1" / "table1.csv") as f:
        table1 = list(csv.DictReader(f))
    assert [(r["method"], r["steps"]) for r in table1] == [("teacher", "10"), ("teacher", "4"), ("lcm", "4"),
                                                          ("pcm", "4"), ("dcm", "4")]
    assert [r["phases"] for r in table1] == ["1", "1", "1", "4", "2"]  # PCM-4: one network of 4 phases
    # a trained row: the mean over training seeds 0 and 1 of each training's mean over sampling seeds, +- their
    # std; the teacher, trained once, over its sampling seeds
    trainings = [pd.DataFrame(read_json(run / "eval" / "dcm-4" / "scores.json")["per_seed"])["total"] * 100
                 for run in (smoke_run, smoke_run / "seed" / "1")]
    means = pd.Series([t.mean() for t in trainings])
    assert float(table1[-1]["total"]) == pytest.approx(means.mean())
    assert float(table1[-1]["total_std"]) == pytest.approx(means.std())
    assert [r["train_seeds"] for r in table1] == ["1", "1", "2", "2", "2"]
    assert float(table1[0]["speedup"]) == 1.0
    table3 = (smoke_run / "tables" / "table3" / "table3.md").read_text()
    assert table3.count("\n") == 2 + 3 and "| (3) | dcm | ✓ | ✓ | ✓ | ✓ |" in table3
    table3, pe = pd.read_csv(smoke_run / "tables" / "table3" / "table3.csv"), read_json(smoke_run / "dete" / "dcm" /
                                                                                    "parameters.json")
    assert table3["extra_params_pct"].tolist() == pytest.approx([0.0, 100.0, 100 * pe["extra"] / pe["backbone"]])
    # the paired columns: DCM against each Table 1 row at 4 steps, each Table 3 row against the one above
    assert [pd.isna(d) for d in pd.read_csv(smoke_run / "tables" / "table1" / "table1.csv")["paired_diff"]] == [
        True, False, False, False, True]
    assert pd.isna(table3["paired_diff"][0]) and table3["paired_p"][1:].between(0, 1).all()


def test_kappa_sweep_retrains_dcm_at_each_other_kappa(smoke_run):
    point = smoke_run / "kappa" / "4"
    resolved = yaml.safe_load((point / "dete" / "dcm" / "config.resolved.yaml").read_text())
    assert resolved["schedule"]["kappa"] == resolved["kappa_sweep"]["point"] == 4
    seme = [json.loads(x) for x in (point / "seme" / "tc" / "metrics.jsonl").read_text().splitlines()]
    assert seme and all(4 < x["index"] <= 10 for x in seme)  # SemE on (4, N], not the run's (6, N]
    dete = [json.loads(x) for x in (point / "dete" / "dcm" / "metrics.jsonl").read_text().splitlines()]
    assert dete and all(0 < x["index"] <= 4 for x in dete)
    assert read_json(point / "samples" / "dcm-4" / "meta.json")["schedule"] == [10, 7, 4, 2, 0]
    assert not (smoke_run / "kappa" / "6").exists()  # the configured kappa is the run itself
    rows = read_json(smoke_run / "tables" / "kappa_sweep" / "kappa_sweep.json")["rows"]
    assert [(r["kappa"], r["configured"]) for r in rows] == [(4, False), (6, True)]
    for row, scores in zip(rows, (point / "eval" / "dcm-4", smoke_run / "eval" / "dcm-4")):
        per_seed = [s["total"] for s in read_json(scores / "scores.json")["per_seed"]]
        assert row["total"] == pytest.approx(100 * sum(per_seed) / len(per_seed))


def test_figures_user_study_and_kappa_analysis(smoke_run):
    for name in ("fig2_noise_probe", "fig3_expert_mix", "fig5_weight_difference", "fig10_trajectory_distance",
                 "fig10_kappa_sweep", "samples_prompt0", "training_terms", "table1", "table3"):
        assert (smoke_run / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    probe = read_json(smoke_run / "vcm" / "noise_probe.json")
    assert len(probe["loss"]) == len(probe["steps"]) and len(probe["loss"][0]) == len(probe["buckets"])
    kappa = read_json(smoke_run / "trajdist" / "trajectory_distance.json")
    assert 0 < kappa["suggested_kappa"] < 10 and kappa["configured_kappa"] == 6
    assert (smoke_run / "userstudy" / "key.json").is_file()
    sheets = list((smoke_run / "userstudy" / "sheets").glob("rater-*/index.html"))
    assert sheets and not any(m in sheets[0].read_text() for m in ("dcm", "lcm", "pcm"))
