"""Tables 1 and 3 of the paper from the evaluation and latency files of a run, with the spread across
sampling seeds (the paper reports single numbers; we report mean +- standard deviation)."""

from __future__ import annotations

import statistics
from pathlib import Path

from dcm.io import read_json

SCORES = ("total", "quality", "semantic")
ABLATION_FLAGS = (("OD", "decouple"), ("PE", "parameter_efficient"), ("TC", "temporal_coherence"), ("GF", "gan"))


def seed_spread(scores: dict, key: str) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of `key` over the per-seed scores, in VBench percent."""
    values = [100 * s[key] for s in scores["per_seed"]]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def _score_columns(scores: dict) -> dict:
    row = {}
    for key in SCORES:
        mean, std, n = seed_spread(scores, key)
        row[key] = mean
        row[f"{key}_std"] = std
    row["seeds"] = n
    for key in ("frechet_to_real", "rmse_to_teacher"):
        if key in scores:
            row[key] = scores[key]
    return row


def table1_rows(eval_dir: Path, samples_dir: Path, sets: list[str]) -> list[dict]:
    """Table 1: latency, speed-up over the first set (the full-step teacher) and scores of each sample set."""
    reference = read_json(samples_dir / sets[0] / "latency.json")["per_video"]["median_s"]
    rows = []
    for name in sets:
        method, steps = name.rsplit("-", 1)
        latency = read_json(samples_dir / name / "latency.json")["per_video"]
        rows.append({"method": method, "steps": int(steps), "latency_s": latency["median_s"],
                     "speedup": reference / latency["median_s"],
                     **_score_columns(read_json(eval_dir / name / "scores.json"))})
    return rows


def table3_rows(eval_dir: Path, variants: dict, steps: int) -> list[dict]:
    """Table 3: one row per ablation variant, its OD/PE/TC/GF switches and scores at `steps` steps."""
    rows = []
    for number, (name, flags) in enumerate(variants.items(), start=1):
        switches = {label: bool(flags[key]) for label, key in ABLATION_FLAGS}
        rows.append({"row": f"({number})", "variant": name, **switches, "steps": steps,
                     **_score_columns(read_json(eval_dir / f"{name}-{steps}" / "scores.json"))})
    return rows


def kappa_sweep_rows(eval_dirs: dict[int, Path], name: str, configured: int) -> list[dict]:
    """Fig. 10 (right) as a table: the scores of sample set `name` at each kappa, the configured one marked."""
    return [{"kappa": kappa, "configured": kappa == configured,
             **_score_columns(read_json(eval_dirs[kappa] / name / "scores.json"))} for kappa in sorted(eval_dirs)]


def _cell(row: dict, key: str) -> str:
    value = row.get(key, "")
    if isinstance(value, bool):
        return "✓" if value else ""
    if key in SCORES:
        return f"{value:.2f} ± {row[f'{key}_std']:.2f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(rows: list[dict], hide: tuple[str, ...] = tuple(f"{k}_std" for k in SCORES)) -> str:
    """The rows as a Markdown table; scores as mean ± std over seeds, booleans as check marks."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in hide]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r, k) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
