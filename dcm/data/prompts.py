"""Reading the prompt split the dataset stage wrote."""

from __future__ import annotations

from pathlib import Path

from dcm.data.procedural import Factors
from dcm.io import read_json


def load_split(dataset_dir: str | Path, split: str) -> list[Factors]:
    """The prompts (as factors) of the 'train' or 'eval' split."""
    return [Factors(**f) for f in read_json(Path(dataset_dir) / "prompts.json")[split]]
