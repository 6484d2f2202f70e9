"""The prompt split the dataset stage writes: procedural factors (tiny backbone) or plain prompt text read
from `data.prompt_file` (real backbones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcm.data.procedural import Factors
from dcm.errors import DCMError
from dcm.io import read_json

PROMPTS_FILE = "prompts.json"


def load_split(dataset_dir: str | Path, split: str) -> list[Factors]:
    """The prompts (as factors) of the 'train' or 'eval' split of a procedural dataset."""
    return [Factors(**f) for f in read_json(Path(dataset_dir) / PROMPTS_FILE)[split]]


def load_captions(dataset_dir: str | Path, split: str) -> list[str]:
    """The prompt texts of the 'train' or 'eval' split, for either kind of dataset."""
    return [f if isinstance(f, str) else Factors(**f).caption for f in read_json(Path(dataset_dir) / PROMPTS_FILE)[split]]


def read_prompt_file(path: str | Path) -> list[str]:
    """Prompts of a text file, one per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DCMError(f"data.prompt_file={str(path)!r} does not exist")
    prompts = [line.strip() for line in path.read_text().splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise DCMError(f"data.prompt_file={str(path)!r} holds no prompts")
    return prompts


def split_prompts(prompts: list[str], holdout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, eval): `holdout` prompts drawn with `seed` are kept out of training; file order is kept."""
    if not 0 <= holdout < len(prompts):
        raise DCMError(f"data.holdout_prompts={holdout} must leave at least one of the {len(prompts)} prompts "
                       "for training")
    held = {int(i) for i in np.random.default_rng(seed).permutation(len(prompts))[:holdout]}
    return ([p for i, p in enumerate(prompts) if i not in held], [p for i, p in enumerate(prompts) if i in held])
