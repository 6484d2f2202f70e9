"""Shared fixtures: a tiny backbone and network small enough for unit tests."""

import pytest
import torch

from dcm.backbones.tiny import TinyBackbone
from dcm.data.procedural import vocabulary
from tests.helpers import SMOKE as SMOKE_CONFIG

torch.set_num_threads(2)

TINY_MODEL = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "ffn_dim": 32, "freq_dim": 16}


def pytest_collection_modifyitems(items):
    """Mark the tests that need the full smoke workflow (built once per session): `pytest -m "not smoke"` is the
    quick loop."""
    for item in items:
        if {"smoke_run", "prepared"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.smoke)


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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Results directory of one full `snakemake` run (every rule, local executor) on config/smoke.yaml."""
    from tests.helpers import snakemake

    results = tmp_path_factory.mktemp("results")
    proc = snakemake("--cores", "2", "--configfile", str(SMOKE_CONFIG), "--config", f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results / "smoke"
