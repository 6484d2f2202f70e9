"""Shared fixtures: a tiny backbone and network small enough for unit tests."""

import os

import pytest
import torch

from dcm.backbones.tiny import TinyBackbone
from dcm.data.procedural import vocabulary
from tests.helpers import SMOKE as SMOKE_CONFIG

WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set under `pytest -n 2`
torch.set_num_threads(1 if WORKER else 2)  # two workers on 2 cores: a thread each

WAITING_FILE = "tests/test_slurm.py"
TINY_MODEL = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "ffn_dim": 32, "freq_dim": 16}


@pytest.hookimpl(wrapper=True)  # around every other implementation: pytest-xdist reads the groups in its own
def pytest_collection_modifyitems(items):
    """Mark the tests that need the smoke workflow or its first stages (`pytest -m "not smoke"` is the quick
    loop), and run those of the full workflow first, as the longest chain. Under `-n 2` (pytest-xdist, with
    pyproject.toml's `--dist loadgroup`) they form one group, so one worker builds the workflow while the other
    runs the rest, and every other file is a group of its own, so its module fixtures are built once. The groups
    start in this order (`--no-loadscope-reorder`; xdist would start the groups with most tests first)."""
    workflow = {item.nodeid for item in items if "smoke_run" in getattr(item, "fixturenames", ())}
    for item in items:
        if item.nodeid in workflow or "prepared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.smoke)
        item.add_marker(pytest.mark.xdist_group("smoke" if item.nodeid in workflow else item.nodeid.split("::")[0]))
    # stable: file order otherwise, but the SLURM test next, on the other worker beside the smoke build: it mostly
    # waits for the executor's status polls
    items.sort(key=lambda item: (item.nodeid not in workflow, not item.nodeid.startswith(WAITING_FILE)))
    return (yield)


def pytest_runtest_setup(item):
    """Under `-n 2`, a worker gives way (nice 10, for it and its subprocesses) once it runs a test outside the
    smoke group: the smoke workflow is the suite's critical path, so the worker building it keeps the CPU."""
    if WORKER and item.get_closest_marker("xdist_group").args[0] != "smoke" and os.nice(0) == 0:
        os.nice(10)


@pytest.fixture
def backbone():
    return TinyBackbone.from_config({"frames": 4, "height": 8, "width": 8}, vocabulary(), 5)


@pytest.fixture
def net(backbone):
    torch.manual_seed(0)
    return backbone.new_network(TINY_MODEL)


@pytest.fixture
def cond(backbone):
    return backbone.encode_prompts(["a red circle moving left", "a blue square moving up"])


@pytest.fixture(scope="session", autouse=True)
def stage_server(tmp_path_factory):
    """Every `python -m dcm` a test starts goes through one warm stage server per worker (dcm/stage_server.py),
    ~5 s of imports less each. Tests of what only a fresh interpreter shows (a SIGKILL, a launcher that patches
    torch first, SLURM jobs, another checkout) run theirs with stage_server.unserved() or their own server."""
    from dcm.stage_server import ENV, running

    with running(tmp_path_factory.mktemp("server") / "stage.sock") as env, pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, env[ENV])
        yield


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Results directory of one full `snakemake` run (every rule, local executor, jobs through the stage server)
    on config/smoke.yaml."""
    from tests.helpers import snakemake

    results = tmp_path_factory.mktemp("results")
    proc = snakemake("--cores", "2", "--configfile", str(SMOKE_CONFIG), "--config", f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results / "smoke"
