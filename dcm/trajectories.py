"""The teacher-trajectory cache: every grid point of the teacher's ODE per (prompt, seed), in half-precision
safetensors shards with a manifest of shapes, config hash and checksums; and the pair sampler on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dcm.config import config_hash
from dcm.errors import DCMError
from dcm.io import load_tensors, read_json, sha256

MANIFEST = "manifest.json"
HASHED_SECTIONS = ("seed", "backbone", "data", "teacher", "schedule", "trajectories")


def trajectory_hash(cfg: dict) -> str:
    """Hash of every config section the cached trajectories depend on; the schedule's kappa is left out, since
    the teacher's ODE does not depend on where the experts split it (the kappa sweep shares one cache)."""
    schedule = {k: v for k, v in cfg["schedule"].items() if k != "kappa"}
    return config_hash({**cfg, "schedule": schedule}, *HASHED_SECTIONS)


@dataclass
class TrajectoryCache:
    """All cached trajectories in memory: latents (K, N+1, C, T, H, W) indexed by grid index, cond (K, L, D)."""

    latents: torch.Tensor
    cond: torch.Tensor
    prompts: list[str]
    manifest: dict

    @classmethod
    def load(cls, directory: str | Path, expect_hash: str | None = None) -> "TrajectoryCache":
        """Read and verify every shard listed in the manifest; errors name the missing or bad file."""
        directory = Path(directory)
        manifest = read_json(directory / MANIFEST)
        if expect_hash is not None and manifest["config_hash"] != expect_hash:
            raise DCMError(f"trajectory cache {directory} was made with config hash {manifest['config_hash']}, "
                           f"this config expects {expect_hash}: rerun the trajectories stage")
        latents, cond, prompts = [], [], []
        for shard in manifest["shards"]:
            path = directory / shard["file"]
            if not path.is_file():
                raise DCMError(f"missing trajectory shard {path} (listed in {directory / MANIFEST})")
            if sha256(path) != shard["sha256"]:
                raise DCMError(f"trajectory shard {path} does not match its checksum in the manifest")
            tensors = load_tensors(path)
            latents.append(tensors["latents"])
            cond.append(tensors["cond"])
            prompts.extend(shard["prompts"])
        return cls(torch.cat(latents), torch.cat(cond), prompts, manifest)

    @property
    def num_steps(self) -> int:
        return self.latents.shape[1] - 1


@dataclass
class PairSampler:
    """Draws (x_{t_n}, x_{t_{n-1}}, n, cond) with n uniform in (lo, hi]: consecutive teacher grid points,
    so the teacher's step of Eq. 5 is read from the cache instead of recomputed."""

    cache: TrajectoryCache
    lo: int
    hi: int
    batch_size: int

    def __post_init__(self):
        if not 0 <= self.lo < self.hi <= self.cache.num_steps:
            raise DCMError(f"index range ({self.lo}, {self.hi}] is outside the cached grid 0..{self.cache.num_steps}")

    def __call__(self, generator: torch.Generator):
        k = torch.randint(len(self.cache.latents), (self.batch_size,), generator=generator)
        n = torch.randint(self.lo + 1, self.hi + 1, (self.batch_size,), generator=generator)
        x_n = self.cache.latents[k, n].float()
        x_prev = self.cache.latents[k, n - 1].float()
        return x_n, x_prev, n, self.cache.cond[k].float()
