"""The streamed trajectory cache: the same pairs as the whole cache in memory, each process reading only its
own shards, corrupt shards named, and peak memory far below the size of the cache."""

import json
import subprocess
import sys

import pytest
import torch

from dcm.errors import DCMError
from dcm.shard_manifest import MANIFEST
from dcm.trajectories import PairSampler, TrajectoryCache, write_manifest, write_shard
from tests.helpers import REPO, write_cache

N, SHAPE = 6, (3, 2, 4, 4)


@pytest.fixture
def stored(tmp_path):
    """(directory, latents, cond, prompts) of a 7-trajectory cache in shards of 2."""
    torch.manual_seed(0)
    latents, cond = torch.randn(7, N + 1, *SHAPE).half(), torch.randn(7, 3, 5).half()
    prompts = [f"prompt {k}" for k in range(7)]
    write_cache(tmp_path / "cache", latents, cond, prompts, shard_size=2)
    return tmp_path / "cache", latents, cond, prompts


def _in_memory_pairs(latents, cond, lo, hi, batch_size, generator):
    """The pre-streaming sampler on the whole cache in memory: k uniform, n uniform in (lo, hi]."""
    k = torch.randint(len(latents), (batch_size,), generator=generator)
    n = torch.randint(lo + 1, hi + 1, (batch_size,), generator=generator)
    return latents[k, n].float(), latents[k, n - 1].float(), n, cond[k].float()


def test_streamed_pairs_equal_the_in_memory_pairs(stored):
    directory, latents, cond, prompts = stored
    cache = TrajectoryCache.load(directory, "test")
    assert len(cache) == 7 and cache.num_steps == N and cache.prompts == prompts
    assert cache.latents.shape == (7, N + 1, *SHAPE) and torch.equal(cache.latents[2:5], latents[2:5])
    streamed, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    sampler = PairSampler(cache, 2, N, 5)
    for _ in range(4):
        got, want = sampler(streamed), _in_memory_pairs(latents, cond, 2, N, 5, reference)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    with pytest.raises(DCMError, match="outside the cached grid"):
        PairSampler(cache, 0, N + 1, 2)
    with pytest.raises(DCMError, match="config hash test"):
        TrajectoryCache.load(directory, "other")


def test_each_rank_reads_its_own_shards(stored):
    directory, latents, _, prompts = stored
    parts = [TrajectoryCache.load(directory, rank=r, world_size=2) for r in range(2)]
    assert parts[0].prompts == prompts[0:2] + prompts[4:6] and parts[1].prompts == prompts[2:4] + prompts[6:]
    assert torch.equal(parts[1].latents[:], latents[[2, 3, 6]])
    x_n, _, n, _ = PairSampler(parts[1], 0, N, 16)(torch.Generator().manual_seed(0))
    mine = latents[[2, 3, 6]].float()
    assert all(any(torch.equal(x_n[j], mine[k, n[j]]) for k in range(3)) for j in range(16))
    with pytest.raises(DCMError, match="4 shards for 5 processes"):
        TrajectoryCache.load(directory, rank=0, world_size=5)


def test_corrupt_and_truncated_shards_are_named(stored):
    directory = stored[0]
    shard = directory / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped byte: found by the checksum on first read
    shard.write_bytes(bytes(data))
    cache = TrajectoryCache.load(directory)
    cache.states(0, 0, 2)  # shard 0 is intact
    with pytest.raises(DCMError, match="shard-00001.safetensors does not match its checksum"):
        cache.states(2, 0, 2)
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(DCMError, match="shard-00001.safetensors has .* bytes"):
        TrajectoryCache.load(directory)
    (directory / "shard-00002.safetensors").unlink()
    with pytest.raises(DCMError, match="missing trajectory shard .*shard-00002.safetensors"):
        TrajectoryCache.load(directory, rank=0, world_size=2)


READER = """
import json, sys
import torch
from dcm.trajectories import PairSampler, TrajectoryCache

def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024

before = status("VmRSS:")
cache = TrajectoryCache.load(sys.argv[1])
sampler, generator = PairSampler(cache, 0, cache.num_steps, 8), torch.Generator().manual_seed(0)
for _ in range(300):
    x_n, x_prev, n, cond = sampler(generator)
print(json.dumps({"before": before, "peak": status("VmHWM:"), "batch_bytes": 2 * x_n.numel() * x_n.element_size()}))
"""


def test_reading_a_large_cache_keeps_peak_memory_far_below_its_size(tmp_path):
    """A 230 MB cache in 16 shards, 300 batches of 8 pairs (a 1.6 MB float32 batch) read in a fresh process:
    its peak resident memory grows by a small fraction of the cache."""
    shape, per_shard = (4, 4, 32, 32), 40  # 32 KiB per fp16 state, 11 states, 40 trajectories: 14.4 MB per shard
    directory = tmp_path / "cache"
    records = []
    generator = torch.Generator().manual_seed(0)
    for i in range(16):
        latents = torch.randn(per_shard, 11, *shape, generator=generator).half()
        records.append(write_shard(directory, i, latents, torch.zeros(per_shard, 2, 4), ["p"] * per_shard, "test"))
    write_manifest(directory, records, config_hash="test", num_steps=10, latent_shape=list(shape), dtype="float16")
    size = sum(r["bytes"] for r in records)
    proc = subprocess.run([sys.executable, "-c", READER, str(directory)], cwd=REPO, capture_output=True, text=True,
                          check=True)
    measured = json.loads(proc.stdout)
    growth = measured["peak"] - measured["before"]
    print(f"cache {size / 1e6:.0f} MB, batch {measured['batch_bytes'] / 1e6:.1f} MB, peak RSS growth {growth / 1e6:.1f} MB")
    assert size > 200e6 and growth < size / 8, (size, measured)
    assert json.loads((directory / MANIFEST).read_text())["count"] == 16 * per_shard
