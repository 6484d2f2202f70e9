"""Adding a method through the registry alone: one library module and one entry in dcm/methods.py METHODS put
it in the Snakemake DAG, in dvc.yaml, in the MLflow experiment of Table 1 and in Table 1 itself."""

import functools
import shutil
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from dcm import stage_server
from tests.helpers import REPO

TOY_MODULE = '''"""A toy baseline: PCM's objective with a single phase, every grid point jumping straight to the clean end."""

from dcm import layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.distillation import fresh_student, pair_source, train_consistency
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def train(cfg: dict) -> None:
    phases = PhaseSchedule.from_config(cfg)
    backbone, teacher = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    with stage_output(layout.trainer_dir(layout.trained_dir(cfg), "toy"), cfg) as work:
        train_consistency(cfg, "pcm", backbone, student, phases.edges("whole"), (0, phases.num_steps), work,
                          pair_source(cfg, backbone, teacher))
        backbone.save_network(student.net, work / layout.NETWORK)
'''
TOY_ENTRY = '''    "toy": Method("toy", "toy: one-phase PCM", "whole", "dcm.method_samplers:single_network", ("pcm",),
                  Trainer("toy", "dcm.toy:train", "pcm", "train the toy baseline")),
'''
IGNORED = shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "__pycache__", "*.egg-info", "dvc-storage",
                                 ".pytest_cache", "mlflow.db")


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory):
    """A copy of the repository with the toy method added: its module and its registry entry, nothing else."""
    repo = tmp_path_factory.mktemp("toy") / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORED)
    (repo / "dcm" / "toy.py").write_text(TOY_MODULE)
    registry = repo / "dcm" / "methods.py"
    text = registry.read_text()
    anchor = text.index("\n}\n", text.index("METHODS = {"))
    registry.write_text(text[:anchor + 1] + TOY_ENTRY + text[anchor + 1:])
    return repo


def _run(repo, *command, env, timeout=900):
    proc = subprocess.run(["timeout", "-s", "KILL", str(timeout), *command], cwd=repo, capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def toy_server(toy_repo, tmp_path):
    """The environment that sends the copy's `python -m dcm` jobs to a stage server of the copy."""
    with stage_server.running(tmp_path / "toy.sock", cwd=toy_repo) as env:
        yield env


def test_a_registered_method_reaches_the_dag_dvc_mlflow_and_table1(toy_repo, toy_server, smoke_run, tmp_path):
    run = functools.partial(_run, toy_repo, env=toy_server)
    snakemake = str(__import__("pathlib").Path(sys.executable).with_name("snakemake"))
    smoke = ["--configfile", "config/smoke.yaml", "--config", f"results_dir={tmp_path}"]
    dry = run(snakemake, "-n", "--forceall", *smoke).stdout
    assert f"{tmp_path}/smoke/toy" in dry and "samples/toy-4" in dry and "eval/toy-4" in dry
    assert "-m dcm toy --config" in dry

    dvc = tmp_path / "dvc.yaml"
    run(sys.executable, "workflow/dvc_yaml.py", "--configfile", "config/smoke.yaml", "--output", str(dvc))
    stages = __import__("yaml").safe_load(dvc.read_text())["stages"]
    assert {"baseline-toy", "sample-toy-4", "evaluate-toy-4"} <= set(stages)
    assert stages["baseline-toy"]["params"] == [{"config/smoke.yaml": ["seed", "backbone", "schedule", "pcm"]}]

    shutil.copytree(smoke_run, tmp_path / "smoke")  # everything but the toy's jobs is up to date
    shutil.rmtree(tmp_path / "smoke" / "tables" / "table1")
    run(snakemake, f"{tmp_path}/smoke/tables/table1", "--cores", "2", *smoke)  # target first: --config
    # takes every argument after it
    rows = pd.read_csv(tmp_path / "smoke" / "tables" / "table1" / "table1.csv")
    assert rows.loc[rows["method"] == "toy", ["steps", "train_seeds"]].values.tolist() == [[4, 2]]
    assert (tmp_path / "smoke" / "seed" / "1" / "toy" / "network").is_dir()  # trained again at the extra seed
    assert not (tmp_path / "smoke" / "samples" / "dcm-4.partial").exists()

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        found = db.execute(
            "SELECT e.name, t.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
            "JOIN tags t ON t.run_uuid = r.run_uuid WHERE t.key = 'stage'").fetchall()
    assert ("smoke/table1", "toy") in found  # the toy's training run
    assert ("smoke/table1", "sample") in found
