"""The Snakemake workflow on the smoke config: every rule runs, a rerun does nothing, bad configs are
refused at validation with the key named."""

import re

import pytest
import yaml

from dcm.io import read_json
from tests.helpers import REPO, SMOKE, snakemake


def test_every_rule_ran_with_log_and_benchmark(smoke_run):
    rows = read_json(smoke_run / "compare" / "distances.json")["rows"]
    variants = yaml.safe_load(SMOKE.read_text())["variants"]
    # teacher-10; teacher, lcm, pcm and every variant at 4 steps; Fig. 3's two expert mixes
    assert len(rows) == 1 + 3 + len(variants) + 2
    assert (smoke_run / "weightdiff" / "weight_difference.json").is_file()
    for rule in ("dataset", "teacher", "trajectories", "seme-tc", "seme-plain", "dete-dcm", "lcm", "compare",
                 "evaluate-dcm-4", "table1", "table3", "figures", "userstudy", "trajdist", "kappa4/seme-tc",
                 "kappa4/dete-dcm", "kappa4/sample-dcm-4", "kappa4/evaluate-dcm-4", "kappa_sweep"):
        assert (smoke_run / "logs" / f"{rule}.log").is_file(), rule
        assert (smoke_run / "benchmarks" / f"{rule}.tsv").is_file(), rule


def test_second_run_does_nothing(smoke_run):
    proc = snakemake("--cores", "2", "--configfile", str(SMOKE), "--config", f"results_dir={smoke_run.parent}")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("change,needle", [
    ({"backbone": {"name": "sora"}}, "sora"),
    ({"seme": {"steps": "many"}}, "many"),
    ({"schedule": {"num_steps": 10}}, "kappa"),
    ({"trajectories": {"seeds_per_prompt": 1, "shard_size": 16, "jobs": 4}}, "trajectories.jobs=4 exceeds the 3 shards"),
])
def test_broken_config_fails_at_validation(tmp_path, change, needle):
    cfg = yaml.safe_load(SMOKE.read_text())
    for key, value in change.items():
        cfg[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", str(path), timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_invocation_is_the_parent_run_of_its_stage_runs(smoke_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{smoke_run.parent / 'mlflow.db'}")
    parents = client.search_runs([client.get_experiment_by_name("smoke/workflow").experiment_id])
    first = min(parents, key=lambda r: r.info.start_time)
    assert first.info.run_name == "snakemake" and first.info.status == "FINISHED"
    setup = client.search_runs([client.get_experiment_by_name("smoke/setup").experiment_id])
    assert {r.data.tags["stage"] for r in setup} == {"dataset", "teacher", "trajectories"}
    assert all(r.data.tags["mlflow.parentRunId"] == first.info.run_id for r in setup)


def test_report_holds_the_tables_and_figures(smoke_run):
    report = smoke_run.parent / "report.html"
    proc = snakemake("--report", str(report), "--configfile", str(SMOKE), "--config",
                     f"results_dir={smoke_run.parent}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in ("table1.md", "table3.md", "kappa_sweep.md", "fig2_noise_probe.png", "fig10_trajectory_distance.png",
                 "fig10_kappa_sweep.png"):
        assert name in html, name


def _planned_jobs(config, results) -> list[dict]:
    """Rule, wildcards, inputs, output and shell command of every job of a forced dry run of `config`."""
    proc = snakemake("-n", "--forceall", "--configfile", str(config), "--config", f"results_dir={results}", timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        rule = re.match(r"rule (\w+):", block)
        if rule:
            field = dict(re.findall(r"^\s+(\w+): (.*)$", block, re.M))
            wildcards = dict(pair.split("=", 1) for pair in field.get("wildcards", "").split(", ") if pair)
            shell = re.search(r"^Shell command: (.*)$", block, re.M)
            jobs.append({"rule": rule.group(1), "wildcards": wildcards, "input": field.get("input", "").split(", "),
                         "output": field.get("output"), "shell": shell.group(1) if shell else None})
    return jobs


def test_the_default_plans_one_pcm_network_per_step_count_and_samples_each_from_its_own(tmp_path):
    run, default = tmp_path / "tiny", REPO / "config" / "config.yaml"
    steps = [str(k) for k in yaml.safe_load(default.read_text())["sampling"]["steps"]]
    assert len(steps) > 1  # the check below needs two networks to tell apart
    jobs = _planned_jobs(default, tmp_path)
    pcm = {job["output"]: job for job in jobs if job["rule"] == "phased_baseline"}
    assert set(pcm) == {f"{run}/pcm/{k}" for k in steps}
    for phases in steps:
        job = pcm[f"{run}/pcm/{phases}"]
        assert job["wildcards"] == {"baseline": "pcm", "phases": phases}
        shell = job["shell"]
        assert " -m dcm pcm --config " in shell and f" --phases {phases} > {run}/logs/pcm-{phases}.log" in shell
    inputs = {job["wildcards"]["steps"]: job["input"] for job in jobs
              if job["rule"] == "sample" and job["wildcards"].get("method") == "pcm"}
    assert set(inputs) == set(steps)
    for k in steps:  # each step count samples its own network and no other
        assert [p for p in inputs[k] if p.startswith(f"{run}/pcm/")] == [f"{run}/pcm/{k}"]
    latency = next(job for job in jobs if job["rule"] == "latency")
    assert set(pcm) <= set(latency["input"])
    assert not any(job["output"] == f"{run}/pcm" for job in jobs)


def test_the_smoke_run_samples_4_steps_so_trains_one_pcm_network(tmp_path):
    jobs = _planned_jobs(SMOKE, tmp_path)
    assert [job["output"] for job in jobs if job["rule"] == "phased_baseline"] == [f"{tmp_path}/smoke/pcm/4"]
