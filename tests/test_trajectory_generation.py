"""Trajectory generation in resumable shards: a generation job killed mid-way (SIGKILL) and rerun, plus the
other parallel job and the final gather, give the same cache as one uninterrupted run; complete shards are
never regenerated."""

import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcm.config import load_config
from dcm.errors import DCMError
from dcm.io import read_json
from dcm.stage_server import unserved
from dcm.stages import dataset, teacher, trajectories
from dcm.cli import seed_torch as setup
from dcm.trajectories import TrajectoryCache
from tests.helpers import REPO, SMOKE

SETTINGS = ["tracking.enabled=false", "trajectories.shard_size=1", "trajectories.batch_size=1"]


def _config(results):
    return load_config(SMOKE, [f"results_dir={results}", *SETTINGS])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A results directory with the smoke dataset and teacher (44 training prompts: 44 one-video shards)."""
    results = tmp_path_factory.mktemp("prepared")
    cfg = _config(results)
    threads = torch.get_num_threads()
    setup(cfg)
    try:
        dataset.run(cfg)
        teacher.run(cfg)
    finally:
        torch.set_num_threads(threads)
    return results


def _run(results, **kwargs):
    """The trajectories stage in this process, with the thread count the command line would use."""
    cfg = _config(results)
    threads = torch.get_num_threads()
    setup(cfg)
    try:
        trajectories.run(cfg, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _copy(prepared, tmp_path, name):
    shutil.copytree(prepared / "smoke", tmp_path / name / "smoke")
    return tmp_path / name


def test_killed_shard_job_resumes_to_the_uninterrupted_cache(prepared, tmp_path):
    reference = _copy(prepared, tmp_path, "reference")
    _run(reference)
    expected = read_json(reference / "smoke" / "trajectories" / "manifest.json")
    assert len(expected["shards"]) == 44 and expected["count"] == 44

    work = _copy(prepared, tmp_path, "work")
    parts = work / "smoke" / "trajectories.partial" / "checkpoint"
    command = [sys.executable, "-m", "dcm", "trajectories", "--shard", "0", "--shards", "2", "--config", str(SMOKE),
               "--set", f"results_dir={work}", *(a for s in SETTINGS for a in ("--set", s))]
    proc = subprocess.Popen(command, cwd=REPO, env=unserved(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # a fresh interpreter: a served one would get SIGTERM
    deadline = time.time() + 300
    while not (parts / "shard-00002.json").is_file():  # job 0 of 2 writes shards 0, 2, 4, ...
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no shard appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = sorted(p.name for p in parts.glob("shard-*.json"))
    assert {"shard-00000.json", "shard-00002.json"} <= set(done) and len(done) < 22, done
    assert all(int(name[6:11]) % 2 == 0 for name in done)  # job 0 wrote only its own shards
    stamps = {name: (parts / name).stat().st_mtime_ns for name in done}
    assert not (work / "smoke" / "trajectories").exists()

    _run(work, shard=0, shards=2)  # the rerun of the killed job
    assert all((parts / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())  # skipped, not redone
    _run(work, shard=1, shards=2)
    assert len(list(parts.glob("shard-*.json"))) == 44
    _run(work)  # the gather: nothing left to generate, writes the manifest and moves the cache into place
    got = read_json(work / "smoke" / "trajectories" / "manifest.json")
    assert got == expected  # identical shards (sha256, bytes), prompts, seeds and grid
    assert not (work / "smoke" / "trajectories.partial").exists()
    TrajectoryCache.load(work / "smoke" / "trajectories").states(43, 0, 2)  # checksums verify on read


def test_bad_shard_options_are_named(prepared, tmp_path):
    work = _copy(prepared, tmp_path, "bad")
    with pytest.raises(DCMError, match="--shard and --shards go together"):
        _run(work, shard=1)
    with pytest.raises(DCMError, match="--shard 2 must lie in 0..1"):
        _run(work, shard=2, shards=2)
    with pytest.raises(DCMError, match="--shards 45 exceeds the 44 shards"):
        _run(work, shard=0, shards=45)
    assert not (work / "smoke" / "trajectories.partial").exists()


def test_torchrun_processes_split_the_shards_and_write_the_same_cache(prepared, tmp_path):
    reference = _copy(prepared, tmp_path, "single")
    _run(reference)
    work = _copy(prepared, tmp_path, "torchrun")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dcm",
               "trajectories", "--config", str(SMOKE), "--set", f"results_dir={work}",
               *(a for s in SETTINGS for a in ("--set", s))]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("trajectory shards: 0 of 22 assigned here are complete, 22 to generate") == 2
    manifest = read_json(work / "smoke" / "trajectories" / "manifest.json")
    assert manifest == read_json(reference / "smoke" / "trajectories" / "manifest.json")
