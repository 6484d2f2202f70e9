"""The teacher-trajectory cache: every grid point of the teacher's ODE per (prompt, seed), in half-precision
safetensors shards, each followed by a record (bytes, sha256, prompts, seeds, config hash) and listed in a
manifest; a streaming reader on it (of every shard, or of one rank's shards i = rank mod world size) and the
pair sampler; and the online teacher, which makes the same pairs during training from a store of encoded videos
in the same format.

The reader never holds the cache in memory: it reads the two states of a pair as one `os.pread` at the offset
the safetensors header
gives (a memory map would keep every page it touched resident, so peak memory would grow to the cache's size).
A shard's size is checked when the cache is opened and its checksum on the first read from it (once per
process), so a corrupt shard is named before any of its values are used."""

from __future__ import annotations

import bisect
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dcm.config import config_hash
from dcm.errors import DCMError
from dcm.io import read_json, save_tensors, sha256, write_json
from dcm.shard_manifest import MANIFEST, check_shard_files
from dcm.solvers import add_noise, euler_step

if TYPE_CHECKING:
    from dcm.backbones.base import Backbone
    from dcm.experts import VelocityFn

HASHED_SECTIONS = ("seed", "backbone", "data", "teacher", "schedule", "trajectories")
SPLIT_ONLY = ("kappa", "expert_phases")  # schedule.* keys that cut the grid without changing the teacher's ODE
TRAINING_ONLY = ("mode", "jobs", "videos")  # trajectories.* keys that do not change the cache's contents
_VERIFIED: set[tuple[str, str]] = set()  # (shard path, sha256) already checked by this process


def trajectory_hash(cfg: dict) -> str:
    """Hash of every config section the cached trajectories depend on; the schedule's kappa and expert_phases are
    left out, since the teacher's ODE does not depend on where the experts split it (the kappa sweep shares one
    cache). So are the keys of TRAINING_ONLY: whether training reads the cache, how many jobs write it, the online
    videos."""
    schedule = {k: v for k, v in cfg["schedule"].items() if k not in SPLIT_ONLY}
    trajectories = {k: v for k, v in cfg["trajectories"].items() if k not in TRAINING_ONLY}
    return config_hash({**cfg, "schedule": schedule, "trajectories": trajectories}, *HASHED_SECTIONS)


def latents_hash(cfg: dict) -> str:
    """Hash of what the online mode's latent store depends on: the backbone (VAE, encoders, size) and the videos."""
    return config_hash({"backbone": cfg["backbone"], "videos": cfg["trajectories"].get("videos")})


def teacher_velocity(backbone: Backbone, teacher: torch.nn.Module) -> VelocityFn:
    """The teacher's velocity field as the trajectories (cached or online) follow it: guided as its pipeline guides
    it (Backbone.guided_predict), so the students learn the guided flow and sample without guidance."""
    return lambda x, sigma, cond: backbone.guided_predict(teacher, x, sigma, cond)


SHARD_DIR = "checkpoint"  # where shards are written inside a stage's work directory (kept across kills)


def shard_jobs(jobs: list, shard_size: int) -> list[list]:
    """The jobs of each shard: consecutive runs of `shard_size`."""
    return [jobs[first:first + shard_size] for first in range(0, len(jobs), shard_size)]


def shard_file(index: int) -> str:
    """File name of shard `index`."""
    return f"shard-{index:05d}.safetensors"


def record_path(directory: Path, index: int) -> Path:
    """The record of shard `index`: written after the shard, so its presence marks the shard complete."""
    return Path(directory) / f"shard-{index:05d}.json"


def write_shard(directory: str | Path, index: int, latents: torch.Tensor, cond: torch.Tensor, prompts: list[str],
                config_hash: str, **fields) -> dict:
    """Write shard `index` (latents (K, N+1, C, T, H, W), cond (K, L, D), fp16) atomically, then its record
    (with `fields`, e.g. the noise seeds or source videos of its rows)."""
    directory = Path(directory)
    path = directory / shard_file(index)
    save_tensors(path, {"latents": latents.half(), "cond": cond.half()})
    record = {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path), "count": len(prompts),
              "latent_shape": list(latents.shape[2:]),
              "prompts": list(prompts), "config_hash": config_hash, **fields}
    write_json(record_path(directory, index), record)
    return record


def complete_shard(directory: str | Path, index: int, config_hash: str) -> dict | None:
    """The record of shard `index` if the shard is complete for `config_hash` (record present, size as
    recorded), else None: what a rerun of generation may skip."""
    path = record_path(directory, index)
    if not path.is_file():
        return None
    record = read_json(path)
    shard = Path(directory) / record["file"]
    if record.get("config_hash") != config_hash or not shard.is_file() or shard.stat().st_size != record["bytes"]:
        return None
    return record


def write_manifest(directory: str | Path, records: list[dict], **meta) -> None:
    """The cache's manifest: `meta` (config hash, grid, shapes) and the shard records in order."""
    write_json(Path(directory) / MANIFEST, {**meta, "count": sum(r["count"] for r in records), "shards": records})


def finish_shards(parts: str | Path, directory: str | Path, count: int, config_hash: str, **meta) -> None:
    """Move the `count` complete shards written into `parts` to `directory` and write their manifest there."""
    parts, directory = Path(parts), Path(directory)
    records = [complete_shard(parts, i, config_hash) for i in range(count)]
    missing = [i for i, r in enumerate(records) if r is None]
    if missing:
        raise DCMError(f"shards {missing} are missing or incomplete in {parts}")
    for i in range(count):
        os.replace(parts / shard_file(i), directory / shard_file(i))
        record_path(parts, i).unlink()
    write_manifest(directory, records, config_hash=config_hash, latent_shape=records[0]["latent_shape"],
                   dtype="float16", **meta)


class ShardReader:
    """Positional reads of rows of one safetensors shard: the header (8-byte length, JSON) gives each tensor's
    dtype, shape and byte range; `rows(name, row, first, last)` reads tensor[row, first:last] in one call."""

    DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        (length,) = struct.unpack("<Q", os.pread(self.fd, 8, 0))
        try:
            self.header = json.loads(os.pread(self.fd, length, 8))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DCMError(f"trajectory shard {path} has a corrupt safetensors header: {err}") from err
        self.data_start = 8 + length

    def rows(self, name: str, row: int, first: int = 0, last: int | None = None) -> torch.Tensor:
        """tensor `name`[row, first:last] (default: the whole row), a new tensor."""
        info = self.header[name]
        dtype, shape = self.DTYPES[info["dtype"]], info["shape"]
        last = shape[1] if last is None else last
        inner = shape[2:]
        item = dtype.itemsize * math.prod(inner)
        offset = self.data_start + info["data_offsets"][0] + (row * shape[1] + first) * item
        data = os.pread(self.fd, (last - first) * item, offset)
        if len(data) != (last - first) * item:
            raise DCMError(f"trajectory shard {self.path} is truncated")
        return torch.frombuffer(bytearray(data), dtype=dtype).view(last - first, *inner)

    def __del__(self):
        if hasattr(self, "fd"):
            os.close(self.fd)


def _verify(path: Path, record: dict) -> None:
    """Check a shard against its record's checksum, once per process."""
    key = (str(path.resolve()), record["sha256"])
    if key in _VERIFIED:
        return
    if sha256(path) != record["sha256"]:
        raise DCMError(f"trajectory shard {path} does not match its checksum in the manifest: it is corrupt; "
                       "rerun the trajectories stage")
    _VERIFIED.add(key)


@dataclass
class TrajectoryCache:
    """This process's part of a cache on disk: trajectory k of this rank is shard `shards[i]`, row k - starts[i].
    Latents are read on demand as (N+1, C, T, H, W) rows of fp16 states indexed by grid index."""

    directory: Path
    manifest: dict
    shards: list[dict]
    _starts: list[int] = field(init=False, repr=False)
    _handles: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        counts = [s["count"] for s in self.shards]
        self._starts = [sum(counts[:i]) for i in range(len(counts))]

    @classmethod
    def load(cls, directory: str | Path, expect_hash: str | None = None, rank: int | None = None,
             world_size: int | None = None) -> "TrajectoryCache":
        """Open the shards of `rank` of `world_size` (default: every shard) of the cache in `directory`; errors
        name the missing or wrong-sized file. Nothing but the manifest is read here. Training opens every shard
        on every process (opening costs no memory): the training loop draws each global batch from one stream
        shared by all processes and each keeps its own disjoint part, so the data order does not depend on the
        number of processes and a run resumes on another world size with the same batches."""
        directory = Path(directory)
        manifest = read_json(directory / MANIFEST)
        if expect_hash is not None and manifest["config_hash"] != expect_hash:
            raise DCMError(f"trajectory cache {directory} was made with config hash {manifest['config_hash']}, "
                           f"this config expects {expect_hash}: rerun the trajectories stage")
        rank, world_size = rank or 0, world_size or 1
        if len(manifest["shards"]) < world_size:
            raise DCMError(f"trajectory cache {directory} has {len(manifest['shards'])} shards for {world_size} "
                           "processes: each process reads its own shards; regenerate with a smaller "
                           "trajectories.shard_size")
        shards = manifest["shards"][rank::world_size]
        check_shard_files(directory, shards)
        return cls(directory, manifest, shards)

    def __len__(self) -> int:
        return sum(s["count"] for s in self.shards)

    def sampler(self, lo: int, hi: int, batch_size: int) -> "PairSampler":
        """Batches of cached pairs with n in (lo, hi]."""
        return PairSampler(self, lo, hi, batch_size)

    @property
    def num_steps(self) -> int:
        return int(self.manifest["num_steps"])

    @property
    def prompts(self) -> list[str]:
        return [p for s in self.shards for p in s["prompts"]]

    def _open(self, i: int) -> ShardReader:
        if i not in self._handles:
            path = self.directory / self.shards[i]["file"]
            _verify(path, self.shards[i])
            self._handles[i] = ShardReader(path)
        return self._handles[i]

    def _locate(self, k: int) -> tuple[int, int]:
        if not 0 <= k < len(self):
            raise IndexError(f"trajectory {k} outside 0..{len(self) - 1}")
        i = bisect.bisect_right(self._starts, k) - 1
        return i, k - self._starts[i]

    def states(self, k: int, first: int, last: int) -> torch.Tensor:
        """Grid points first..last-1 of trajectory k, (last - first, C, T, H, W) in fp16."""
        i, row = self._locate(k)
        return self._open(i).rows("latents", row, first, last)

    def conditions(self, ks) -> torch.Tensor:
        """Prompt embeddings of trajectories `ks`, (len(ks), L, D) in float32."""
        rows = []
        for k in ks:
            i, row = self._locate(int(k))
            rows.append(self._open(i).rows("cond", row))
        return torch.stack(rows).float()

    def trajectories(self, first: int, last: int) -> torch.Tensor:
        """Whole trajectories first..last-1, (last - first, N+1, C, T, H, W) in fp16."""
        return torch.stack([self.states(k, 0, self.num_steps + 1) for k in range(first, min(last, len(self)))])

    @property
    def latents(self) -> "TrajectoryView":
        """All trajectories as a lazily read (K, N+1, C, T, H, W) array: slicing the first axis reads them."""
        return TrajectoryView(self)


@dataclass
class TrajectoryView:
    """Read-only array view of a cache for code that walks trajectories in chunks: len, shape, ndim and
    `view[a:b]` (one contiguous range of trajectories, read from disk)."""

    cache: TrajectoryCache

    def __len__(self) -> int:
        return len(self.cache)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.cache), self.cache.num_steps + 1, *self.cache.manifest["latent_shape"])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: slice) -> torch.Tensor:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a trajectory view reads contiguous ranges of trajectories only")
        first, last, _ = index.indices(len(self.cache))
        return self.cache.trajectories(first, last)


@dataclass
class PairSampler:
    """Draws (x_{t_n}, x_{t_{n-1}}, n, cond) with n uniform in (lo, hi]: consecutive teacher grid points,
    so the teacher's step of Eq. 5 is read from the cache instead of recomputed. Under torchrun each process
    draws from its own shards."""

    cache: TrajectoryCache
    lo: int
    hi: int
    batch_size: int

    def __post_init__(self):
        if not 0 <= self.lo < self.hi <= self.cache.num_steps:
            raise DCMError(f"index range ({self.lo}, {self.hi}] is outside the cached grid 0..{self.cache.num_steps}")

    def __call__(self, generator: torch.Generator):
        k = torch.randint(len(self.cache), (self.batch_size,), generator=generator)
        n = torch.randint(self.lo + 1, self.hi + 1, (self.batch_size,), generator=generator)
        pairs = torch.stack([self.cache.states(int(a), int(b) - 1, int(b) + 1) for a, b in zip(k, n)]).float()
        return pairs[:, 1], pairs[:, 0], n, self.cache.conditions(k.tolist())


@dataclass
class OnlineTeacher:
    """Teacher pairs made during training, as the authors do: data latents x_0 (a latent store, i.e. a cache of
    one-point trajectories) noised to t_n (Eq. 1), and the teacher's Euler step from there to t_{n-1} (Eq. 5):
    one teacher forward per training step instead of a cached 50-step trajectory per video."""

    latents: TrajectoryCache
    velocity: VelocityFn  # the (guided) teacher: (x, sigma, cond) -> v
    sigmas: torch.Tensor

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def conditions(self, ks) -> torch.Tensor:
        return self.latents.conditions(ks)

    def sampler(self, lo: int, hi: int, batch_size: int) -> "OnlinePairs":
        """Batches of online teacher pairs with n in (lo, hi]."""
        return OnlinePairs(self, lo, hi, batch_size)


@dataclass
class OnlinePairs:
    """Draws (x_{t_n}, x_{t_{n-1}}, n, cond) like PairSampler, with x_{t_n} = sigma_n eps + (1 - sigma_n) x_0
    and x_{t_{n-1}} = Phi(x_{t_n}, v_teacher, t_{n-1})."""

    source: OnlineTeacher
    lo: int
    hi: int
    batch_size: int

    def __post_init__(self):
        if not 0 <= self.lo < self.hi <= self.source.num_steps:
            raise DCMError(f"index range ({self.lo}, {self.hi}] is outside the teacher grid 0..{self.source.num_steps}")

    def __call__(self, generator: torch.Generator):
        store = self.source.latents
        k = torch.randint(len(store), (self.batch_size,), generator=generator)
        n = torch.randint(self.lo + 1, self.hi + 1, (self.batch_size,), generator=generator)
        x0 = torch.stack([store.states(int(a), 0, 1)[0] for a in k]).float()
        cond = store.conditions(k.tolist())
        noise = torch.randn(x0.shape, generator=generator)
        s_n, s_prev = self.source.sigmas[n].float(), self.source.sigmas[n - 1].float()
        x_n = add_noise(x0, noise, s_n)
        with torch.no_grad():
            x_prev = euler_step(x_n, self.source.velocity(x_n, s_n, cond), s_n, s_prev)
        return x_n, x_prev, n, cond
