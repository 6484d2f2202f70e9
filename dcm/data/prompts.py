"""The prompt split the dataset stage writes: procedural factors (tiny backbone) or plain prompt text read
from `data.prompt_file` (real backbones): one prompt per line, or a JSON/YAML list for prompts no line can hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from dcm.data.procedural import Factors
from dcm.errors import DCMError
from dcm.io import read_json, yaml_problem

PROMPTS_FILE = "prompts.json"
LIST_SUFFIXES = (".json", ".yaml", ".yml")  # prompt files read as a list of strings, not as lines


def load_split(dataset_dir: str | Path, split: str) -> list[Factors]:
    """The prompts (as factors) of the 'train' or 'eval' split of a procedural dataset."""
    return [Factors(**f) for f in read_json(Path(dataset_dir) / PROMPTS_FILE)[split]]


def load_captions(dataset_dir: str | Path, split: str) -> list[str]:
    """The prompt texts of the 'train' or 'eval' split, for either kind of dataset."""
    return [f if isinstance(f, str) else Factors(**f).caption for f in read_json(Path(dataset_dir) / PROMPTS_FILE)[split]]


def read_prompt_file(path: str | Path) -> list[str]:
    """Prompts of `data.prompt_file`: a JSON or YAML list of strings (.json, .yaml, .yml: any prompt, kept
    exactly), or a text file with one prompt per line, blank lines and lines starting with '#' skipped.
    A text line that reading would change (leading or trailing whitespace, a line separator inside it), a
    repeated prompt or a file that is not UTF-8 is refused, naming the file and the line or item."""
    path = Path(path)
    key = f"data.prompt_file={str(path)!r}"
    if not path.is_file():
        raise DCMError(f"{key} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DCMError(f"{key}: line {line} is not UTF-8 (byte {raw[err.start]:#04x})") from err
    suffix = path.suffix.lower()
    located = _prompt_lines(text, key) if suffix not in LIST_SUFFIXES else _prompt_list(text, key, suffix == ".json")
    if not located:
        raise DCMError(f"{key} holds no prompts")
    first: dict[str, str] = {}
    for where, prompt in located:
        if prompt in first:
            raise DCMError(f"{key}: {where} repeats the prompt of {first[prompt]}: {prompt!r}")
        first[prompt] = where
    return [prompt for _, prompt in located]


def _prompt_lines(text: str, key: str) -> list[tuple[str, str]]:
    located = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line  # CRLF files
        if not line.strip() or line.startswith("#"):
            continue
        if line != line.strip():
            raise DCMError(f"{key}: line {number} has leading or trailing whitespace, which one-per-line reading "
                           f"would strip: {line!r}; give such prompts as a JSON or YAML list")
        if len(line.splitlines()) > 1:
            raise DCMError(f"{key}: line {number} contains a line separator, so it is not one prompt per line: "
                           f"{line!r}; give such prompts as a JSON or YAML list")
        located.append((f"line {number}", line))
    return located


def _prompt_list(text: str, key: str, is_json: bool) -> list[tuple[str, str]]:
    try:
        prompts = json.loads(text) if is_json else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise DCMError(f"{key}: invalid JSON at line {err.lineno}: {err.msg}") from err
    except yaml.YAMLError as err:
        raise DCMError(f"{key}: invalid YAML at {yaml_problem(err)}") from err
    if not isinstance(prompts, list):
        raise DCMError(f"{key}: a .json/.yaml prompt file must hold a list of strings, not {type(prompts).__name__}")
    for number, prompt in enumerate(prompts, start=1):
        if not isinstance(prompt, str) or not prompt.strip():
            raise DCMError(f"{key}: item {number} must be a non-empty string, not {prompt!r}")
    return [(f"item {number}", prompt) for number, prompt in enumerate(prompts, start=1)]


def split_prompts(prompts: list[str], holdout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, eval): `holdout` prompts drawn with `seed` are kept out of training; file order is kept."""
    if not 0 <= holdout < len(prompts):
        raise DCMError(f"data.holdout_prompts={holdout} must leave at least one of the {len(prompts)} prompts "
                       "for training")
    held = {int(i) for i in np.random.default_rng(seed).permutation(len(prompts))[:holdout]}
    return ([p for i, p in enumerate(prompts) if i not in held], [p for i, p in enumerate(prompts) if i in held])
