"""Killed training resumes to the same result; bad input fails with one clear error and leaves nothing."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcm.io import load_tensors
from dcm.stage_server import unserved
from tests.helpers import REPO, SMOKE, dcm, dcm_in_process

PREREQUISITES = ("dataset", "teacher", "trajectories")


@pytest.fixture
def prepared(smoke_run, tmp_path):
    """A fresh results dir holding only the smoke run's dataset, teacher and trajectories."""
    for stage in PREREQUISITES:
        shutil.copytree(smoke_run / stage, tmp_path / "smoke" / stage)
    return tmp_path


def _weights(run_dir, stage):
    return load_tensors(next((run_dir / stage / "network").glob("*.safetensors")))


def _wait_for_checkpoint(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not (path / "progress.json").is_file():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def test_killed_training_resumes_to_the_uninterrupted_result(prepared, tmp_path_factory):
    extra = ["--set", "vcm.steps=12", "--set", "vcm.checkpoint_every=3", "--set", "tracking.enabled=false"]
    reference = tmp_path_factory.mktemp("reference")
    shutil.copytree(prepared / "smoke", reference / "smoke")
    dcm("vcm", *extra, results=reference)

    command = [sys.executable, "-m", "dcm", "vcm", "--config", str(SMOKE), "--set", f"results_dir={prepared}", *extra]
    proc = subprocess.Popen(command, cwd=REPO, env=unserved(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # a fresh interpreter: a served one would get SIGTERM
    _wait_for_checkpoint(prepared / "smoke" / "vcm.partial" / "checkpoint", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (prepared / "smoke" / "vcm").exists()  # no half-written final output
    resumed = dcm("vcm", *extra, results=prepared)
    assert "vcm:" in resumed.stderr
    a, b = _weights(reference / "smoke", "vcm"), _weights(prepared / "smoke", "vcm")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [line for line in (prepared / "smoke" / "vcm" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 12


def _fails(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in message, message


def test_missing_trajectory_shard_is_named_and_leaves_nothing(prepared, capsys):
    (prepared / "smoke" / "trajectories" / "shard-00000.safetensors").unlink()
    _fails(dcm_in_process("seme", results=prepared, capsys=capsys), "shard-00000.safetensors")
    assert not (prepared / "smoke" / "seme").exists()


def test_missing_upstream_stage_is_named(tmp_path, capsys):
    _fails(dcm_in_process("teacher", results=tmp_path, capsys=capsys), "dataset")


def test_truncated_checkpoint_is_named(prepared, capsys):
    extra = ["--set", "vcm.steps=200", "--set", "vcm.checkpoint_every=2"]
    command = [sys.executable, "-m", "dcm", "vcm", "--config", str(SMOKE), "--set", f"results_dir={prepared}", *extra]
    proc = subprocess.Popen(command, cwd=REPO, env=unserved(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # a fresh interpreter: a served one would get SIGTERM
    checkpoint = prepared / "smoke" / "vcm.partial" / "checkpoint"
    _wait_for_checkpoint(checkpoint, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = checkpoint / "state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    _fails(dcm_in_process("vcm", *extra, results=prepared, capsys=capsys), "state.safetensors")
    assert not (prepared / "smoke" / "vcm").exists()


def test_prompt_with_quotes_and_shell_characters_is_rejected_by_name(prepared, capsys):
    prompt = 'a "red" circle; rm -rf ~ `ls` $(id) && echo \'x\''
    proc = dcm_in_process("sample", "--method", "teacher", "--steps", "2", "--set",
                          f"sampling.prompts={json.dumps([prompt])}", results=prepared, capsys=capsys)
    _fails(proc, "sampling.prompts", "rm")
    assert not (prepared / "smoke" / "samples").exists()


def test_kappa_point_of_a_method_without_experts_is_refused(prepared, capsys):
    _fails(dcm_in_process("sample", "--method", "teacher", "--steps", "4", "--kappa", "4", results=prepared,
                          capsys=capsys), "--kappa 4", "'teacher'")
    _fails(dcm_in_process("seme", "--kappa", "10", results=prepared, capsys=capsys), "--kappa", "kappa=10")
    assert not (prepared / "smoke" / "kappa").exists()


def test_kappa_point_shares_the_runs_trajectory_cache(prepared, capsys):
    """The cache's hash leaves kappa out: a sweep point trains on the run's trajectories."""
    dcm("seme", "--kappa", "4", "--set", "seme.steps=1", "--set", "tracking.enabled=false", results=prepared)
    assert (prepared / "smoke" / "kappa" / "4" / "seme" / "tc" / "network").is_dir()
    assert not (prepared / "smoke" / "seme").exists()
    _fails(dcm_in_process("seme", "--set", "schedule.shift=2.0", results=prepared, capsys=capsys), "config hash")
