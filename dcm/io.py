"""Atomic file and directory writes, safetensors and JSON helpers with errors that name the file."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from dcm.errors import DCMError

if TYPE_CHECKING:
    import torch
    import yaml

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success rename it onto `path`, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # the process umask, as for every other file: mkstemp/mkdtemp create 0600/0700, and some writers
        # (safetensors' save_file) replace the file with their own 0600 one, so this comes after the write
        tmp.chmod((0o777 if is_dir else 0o666) & ~_UMASK)
        if is_dir:
            replace_directory(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def yaml_problem(err: "yaml.YAMLError") -> str:
    """One line for a YAML error: its line and column (1-based) and what is wrong."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + str(getattr(err, "problem", None) or err).replace("\n", " ")


def check_writable(path: Path, key: str) -> None:
    """Refuse, naming the config `key`, a directory that cannot be created or written; nothing is left behind
    (the probe is made and removed in the nearest existing ancestor)."""
    ancestor = next(p for p in [path, *path.parents] if p.exists())
    try:
        if not ancestor.is_dir():
            raise NotADirectoryError(f"{ancestor} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".dcm-write-probe-", dir=ancestor))
    except OSError as err:
        raise DCMError(f"{key}={path}: cannot write there ({err.strerror or err})") from None


def replace_directory(src: Path, dst: Path) -> None:
    """Move directory `src` to `dst`, replacing what was there; `dst` is never seen half-written."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file, naming it in the error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DCMError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DCMError(f"corrupt JSON in {path}: {err}") from err


def read_jsonl(path: str | os.PathLike) -> list:
    """Read a JSON-lines file (one object a line, blank lines skipped), naming it and the line if one is malformed."""
    path = Path(path)
    if not path.is_file():
        raise DCMError(f"missing file: {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DCMError(f"corrupt JSON in {path}, line {number}: {err}") from err
    return rows


def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write dict rows as CSV, atomically; the columns are every key in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Save a dict of tensors as safetensors, atomically."""
    from safetensors.torch import save_file  # torch-backed: imported on use, so JSON-only callers stay light

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file, naming it in the error if it is missing or truncated."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DCMError(f"missing file: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise DCMError(f"corrupt or truncated safetensors file {path}: {err}") from err


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
