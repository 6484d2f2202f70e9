"""The Snakemake workflow on the smoke config: every rule runs, a rerun does nothing, bad configs are
refused at validation with the key named."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcm.io import read_json
from tests.helpers import REPO, SMOKE

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run snakemake from the repo root under a hard kill timeout (it ignores SIGTERM while waiting)."""
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), str(SNAKEMAKE), *args], cwd=REPO,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("snakemake")
    proc = snakemake("--cores", "2", "--configfile", str(SMOKE), "--config", f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results / "smoke"


def test_every_rule_ran_with_log_and_benchmark(workflow_run):
    rows = read_json(workflow_run / "compare" / "distances.json")["rows"]
    variants = yaml.safe_load(SMOKE.read_text()).get("variants") or ["vcm", "od", "od_pe", "od_pe_tc", "od_pe_gf",
                                                                       "dcm"]
    assert len(rows) == 1 + 2 * (3 + len(variants))  # teacher-10, and 2 step counts x (teacher, lcm, pcm, variants)
    assert (workflow_run / "weightdiff" / "weight_difference.json").is_file()
    for rule in ("dataset", "teacher", "trajectories", "seme-tc", "seme-plain", "dete-dcm", "lcm", "compare"):
        assert (workflow_run / "logs" / f"{rule}.log").is_file(), rule
        assert (workflow_run / "benchmarks" / f"{rule}.tsv").is_file(), rule


def test_second_run_does_nothing(workflow_run):
    proc = snakemake("--cores", "2", "--configfile", str(SMOKE), "--config", f"results_dir={workflow_run.parent}")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("change,needle", [
    ({"backbone": {"name": "sora"}}, "sora"),
    ({"seme": {"steps": "many"}}, "many"),
    ({"schedule": {"num_steps": 10}}, "kappa"),
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


def test_snakemake_invocation_is_the_parent_run_of_its_stage_runs(workflow_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workflow_run.parent / 'mlflow.db'}")
    parents = client.search_runs([client.get_experiment_by_name("smoke/workflow").experiment_id])
    first = min(parents, key=lambda r: r.info.start_time)
    assert first.info.run_name == "snakemake" and first.info.status == "FINISHED"
    setup = client.search_runs([client.get_experiment_by_name("smoke/setup").experiment_id])
    assert {r.data.tags["stage"] for r in setup} == {"dataset", "teacher", "trajectories"}
    assert all(r.data.tags["mlflow.parentRunId"] == first.info.run_id for r in setup)
