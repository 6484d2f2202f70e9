"""The warm stage server: a command run through it exits, prints and stops on signals as it would run alone."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dcm import stage_server
from tests.helpers import REPO, SMOKE


@pytest.fixture
def server():
    """The environment of commands sent to this worker's stage server (tests/conftest.py starts it)."""
    assert stage_server.ENV in os.environ
    return dict(os.environ)


def _both(args, env):
    """The same `python -m dcm ARGS` alone and through the server: (alone, served) completed processes."""
    command = [sys.executable, "-m", "dcm", *args]
    return [subprocess.run(command, cwd=REPO, env=e, capture_output=True, text=True)
            for e in (stage_server.unserved(env), env)]


@pytest.mark.parametrize("args, status", [
    (["--help"], 0),  # argparse exits from inside main
    (["dete", "--help"], 0),
    (["sample", "--config", str(SMOKE)], 2),  # a usage error: argparse's lines
    (["schedule", "--config", str(SMOKE), "--set", "schedule.kappa=99"], 2),  # a refusal: one line
    (["schedule", "--config", str(SMOKE), "--set", "tracking.enabled=false"], 0),  # a stage's output on stdout
], ids=["help", "stage-help", "usage-error", "refusal", "output"])
def test_a_served_command_prints_and_exits_as_it_would_alone(server, args, status, tmp_path):
    alone, served = _both([*args, *(["--set", f"results_dir={tmp_path}"] if "--config" in args else [])], server)
    assert served.returncode == alone.returncode == status
    assert served.stdout == alone.stdout
    assert [line for line in served.stderr.splitlines() if " dcm INFO " not in line] == \
        [line for line in alone.stderr.splitlines() if " dcm INFO " not in line]


def test_a_served_command_runs_in_its_own_directory_and_environment(server, tmp_path):
    env = {**server, "SLURM_JOB_ID": "probe-17"}  # the stage logs it
    proc = subprocess.run([sys.executable, "-m", "dcm", "dataset", "--config", str(SMOKE), "--set",
                           "results_dir=relative", "--set", "tracking.enabled=false"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "SLURM_JOB_ID=probe-17" in proc.stderr
    assert (tmp_path / "relative" / "smoke" / "dataset").is_dir()  # results_dir relative to the command's directory


def test_sigterm_reaches_the_served_training_which_checkpoints_and_stops(server, smoke_run, tmp_path):
    for stage in ("dataset", "teacher", "trajectories"):
        shutil.copytree(smoke_run / stage, tmp_path / "smoke" / stage)
    command = [sys.executable, "-m", "dcm", "vcm", "--config", str(SMOKE), "--set", f"results_dir={tmp_path}",
               "--set", "vcm.steps=100000", "--set", "vcm.checkpoint_every=2", "--set", "tracking.enabled=false"]
    run = subprocess.Popen(command, cwd=REPO, env=server, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    progress = tmp_path / "smoke" / "vcm.partial" / "checkpoint" / "progress.json"
    deadline = time.time() + 120
    while not progress.is_file():
        assert run.poll() is None and time.time() < deadline, run.stderr.read()[-3000:]
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)  # to the command: it forwards it to the server's child
    stderr = run.communicate(timeout=60)[1]
    assert run.returncode != 0 and "stopped by a signal after step" in stderr, stderr[-3000:]
    assert not (tmp_path / "smoke" / "vcm").exists()  # nothing published


def test_no_server_at_the_socket_is_one_line_and_status_2(tmp_path):
    env = {**os.environ, stage_server.ENV: str(tmp_path / "none.sock")}
    proc = subprocess.run([sys.executable, "-m", "dcm", "--help"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "none.sock: no stage server answers" in proc.stderr


def test_a_server_of_another_checkout_refuses_the_command(server, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(REPO / "dcm", other / "dcm", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "dcm", "--help"], cwd=other, env=server, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "start a server from this checkout" in proc.stderr and str(other / "dcm") in proc.stderr


def test_the_server_refuses_a_path_that_is_a_file_or_a_live_server(server, tmp_path):
    taken = tmp_path / "results.csv"
    taken.write_text("kept\n")
    for path, needle in ((taken, "it exists and is not a socket"),
                         (server[stage_server.ENV], "a stage server already listens there")):
        proc = subprocess.run([sys.executable, "-m", "dcm.stage_server", str(path)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0 and proc.stderr.strip() == f"error: cannot listen on {path}: {needle}"
    assert taken.read_text() == "kept\n"
    assert subprocess.run([sys.executable, "-m", "dcm", "--help"], env=server, capture_output=True).returncode == 0
