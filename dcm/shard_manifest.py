"""The trajectory cache's manifest and the cheap check of its shard files against it (torch-free, so the
workflow can check a cache while it builds the DAG: `snakemake -n` notices a missing or truncated shard)."""

from __future__ import annotations

from pathlib import Path

from dcm.errors import DCMError
from dcm.io import read_json

MANIFEST = "manifest.json"


def check_shard_files(directory: Path, shards: list[dict]) -> None:
    """Every shard of `shards` (manifest records) is present with the size its record gives."""
    for shard in shards:
        path = directory / shard["file"]
        if not path.is_file():
            raise DCMError(f"missing trajectory shard {path} (listed in {directory / MANIFEST})")
        if "bytes" in shard and path.stat().st_size != shard["bytes"]:  # older manifests lack sizes
            raise DCMError(f"trajectory shard {path} has {path.stat().st_size} bytes, the manifest records "
                           f"{shard['bytes']}: it is truncated or corrupt; rerun the trajectories stage")


def check_cache(directory: str | Path) -> None:
    """A finished cache's shards against its manifest (nothing to check while the cache does not exist)."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        check_shard_files(directory, read_json(directory / MANIFEST)["shards"])
