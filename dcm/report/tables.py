"""Tables 1 and 3 of the paper from the evaluation and latency files of a run, with the spread across
sampling seeds (the paper reports single numbers; we report mean +- standard deviation), as pandas frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcm.errors import DCMError
from dcm.eval.latency import speedups
from dcm.io import read_json
from dcm.layout import parse_sample_set

SCORES = ("total", "quality", "semantic")
ABLATION_FLAGS = (("OD", "decouple"), ("PE", "parameter_efficient"), ("TC", "temporal_coherence"), ("GF", "gan"))


def seed_spread(scores: dict, key: str) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of `key` over the per-seed scores, in VBench percent."""
    values = pd.Series([100 * s[key] for s in scores["per_seed"]], dtype=float)
    return float(values.mean()), float(values.std()) if len(values) > 1 else 0.0, len(values)


def _score_columns(scores: dict) -> dict:
    per_seed = 100 * pd.DataFrame(scores["per_seed"], columns=list(SCORES), dtype=float)
    spread = per_seed.std() if len(per_seed) > 1 else per_seed.iloc[0] * 0.0
    row = {}
    for key in SCORES:
        row[key] = float(per_seed[key].mean())
        row[f"{key}_std"] = float(spread[key])
    row["seeds"] = len(per_seed)
    row.update({k: scores[k] for k in ("frechet_to_real", "rmse_to_teacher") if k in scores})
    return row


def _scores(directory: Path, name: str) -> dict:
    return _score_columns(read_json(directory / name / "scores.json"))


def table1_rows(eval_dir: Path, latency_file: Path, sets: list[str]) -> pd.DataFrame:
    """Table 1: latency (all sets timed interleaved in one job), speed-up over the first set (the full-step
    teacher) and scores of each sample set."""
    timed = read_json(latency_file)["per_video"]
    missing = [name for name in sets if name not in timed]
    if missing:
        raise DCMError(f"{latency_file} has no latency for {missing}: rerun the 'latency' stage")
    frame = pd.DataFrame([{"method": parse_sample_set(name)[0], "steps": parse_sample_set(name)[1],
                           "latency_s": timed[name]["median_s"], **_scores(eval_dir, name)} for name in sets])
    speedup = speedups(timed, sets[0])  # paired by round, as the latency stage reports them
    frame.insert(3, "speedup", [speedup[name] for name in sets])
    return frame


def table3_rows(eval_dir: Path, variants: dict, steps: int) -> pd.DataFrame:
    """Table 3: one row per ablation variant, its OD/PE/TC/GF switches and scores at `steps` steps."""
    return pd.DataFrame([{"row": f"({number})", "variant": name,
                          **{label: bool(flags[key]) for label, key in ABLATION_FLAGS}, "steps": steps,
                          **_scores(eval_dir, f"{name}-{steps}")}
                         for number, (name, flags) in enumerate(variants.items(), start=1)])


def kappa_sweep_rows(eval_dirs: dict[int, Path], name: str, configured: int) -> pd.DataFrame:
    """Fig. 10 (right) as a table: the scores of sample set `name` at each kappa, the configured one marked."""
    return pd.DataFrame([{"kappa": kappa, "configured": kappa == configured, **_scores(eval_dirs[kappa], name)}
                         for kappa in sorted(eval_dirs)])


def _cell(row: dict, key: str) -> str:
    value = row.get(key, "")
    if isinstance(value, bool):
        return "✓" if value else ""
    if key in SCORES:
        return f"{value:.2f} ± {row[f'{key}_std']:.2f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(rows: list[dict] | pd.DataFrame, hide: tuple[str, ...] = tuple(f"{k}_std" for k in SCORES)) -> str:
    """The rows as a Markdown table; scores as mean ± std over seeds, booleans as check marks."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in hide]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r, k) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
