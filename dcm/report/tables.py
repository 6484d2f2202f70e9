"""Tables 1 and 3 of the paper from the evaluation and latency files of a run, with the spread across
training seeds (across sampling seeds for a row trained once: the paper reports single numbers; we report
mean +- standard deviation) and a paired comparison of per-video Totals (same prompts, same noise, same training
seed), as pandas frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcm.errors import DCMError
from dcm.eval.latency import speedups
from dcm.eval.paired import paired_difference
from dcm.io import read_json
from dcm.layout import parse_sample_set

SCORES = ("total", "quality", "semantic")
ABLATION_FLAGS = (("OD", "decouple"), ("PE", "parameter_efficient"), ("TC", "temporal_coherence"), ("GF", "gan"))
# the paired comparison's columns: mean difference of per-video Totals, its 95% bootstrap interval, p-value, and
# with several training seeds how many of them have a positive mean difference ("2/3")
PAIRED = ("paired_diff", "paired_low", "paired_high", "paired_p", "paired_seeds_positive")


def _score_columns(trainings: list[dict]) -> dict:
    """Scores of one row from its evaluations, one per training seed: the mean over training seeds of each
    training's mean over sampling seeds, and the standard deviation across training seeds (across sampling
    seeds when the row was trained once)."""
    per_seed = [100 * pd.DataFrame(s["per_seed"], columns=list(SCORES), dtype=float) for s in trainings]
    spread_of = pd.DataFrame([frame.mean() for frame in per_seed]) if len(per_seed) > 1 else per_seed[0]
    means = spread_of.mean()
    spread = spread_of.std() if len(spread_of) > 1 else means * 0.0
    row = {}
    for key in SCORES:
        row[key] = float(means[key])
        row[f"{key}_std"] = float(spread[key])
    row["train_seeds"] = len(trainings)
    row["seeds"] = len(per_seed[0])
    for key in ("frechet_to_real", "rmse_to_teacher"):
        if all(key in s for s in trainings):
            row[key] = float(pd.Series([s[key] for s in trainings]).mean())
    return row


def read_trainings(eval_dirs: list[Path], name: str, trained: bool) -> list[dict]:
    """The scores of sample set `name`, one per training seed (`eval_dirs`: the run's first), or the run's
    alone for a set that trains nothing (the teacher's)."""
    return [read_json(d / name / "scores.json") for d in (eval_dirs if trained else eval_dirs[:1])]


def paired_columns(trainings: list[dict] | None, baseline: list[dict] | None) -> dict:
    """PAIRED columns, in VBench percent: `trainings` minus `baseline` video by video, each training seed's
    videos against the same seed's (against the one evaluation of a row trained once), the pairs of all seeds
    pooled, and how many training seeds differ positively; empty when either is missing or lacks per-video
    Totals (VBench scores each dimension on its own prompts)."""
    if trainings is None or baseline is None or any("per_video_total" not in s for s in [*trainings, *baseline]):
        return dict.fromkeys(PAIRED)
    count = max(len(trainings), len(baseline))
    a, b = ([100 * pd.Series(s["per_video_total"]) for s in (scores * count)[:count]]
            for scores in (trainings, baseline))
    result = paired_difference(pd.concat(a, ignore_index=True), pd.concat(b, ignore_index=True))
    positive = f"{sum((x - y).mean() > 0 for x, y in zip(a, b))}/{count}" if count > 1 else None
    return dict(zip(PAIRED, (result["diff"], result["ci_low"], result["ci_high"], result["p_value"], positive)))


def table1_rows(eval_dirs: list[Path], latency_file: Path, sets: list[str], focus: str,
                phases: dict[str, int], trained: set[str]) -> pd.DataFrame:
    """Table 1: each sample set's phase count (`phases`), latency (all sets timed interleaved in one job),
    speed-up over the first set (the full-step teacher), scores over the training seeds (`eval_dirs`, one per
    seed, for the `trained` sets), and `focus` (the method the table is about) minus each other row at the same
    step count, paired video by video."""
    timed = read_json(latency_file)["per_video"]
    missing = [name for name in sets if name not in timed]
    if missing:
        raise DCMError(f"{latency_file} has no latency for {missing}: rerun the 'latency' stage")
    scores = {name: read_trainings(eval_dirs, name, name in trained) for name in sets}
    rows = []
    for name in sets:
        method, steps = parse_sample_set(name)
        against = scores.get(f"{focus}-{steps}") if method != focus else None
        rows.append({"method": method, "steps": steps, "phases": phases[name], "latency_s": timed[name]["median_s"],
                     **_score_columns(scores[name]), **paired_columns(against, scores[name])})
    frame = pd.DataFrame(rows)
    speedup = speedups(timed, sets[0])  # paired by round, as the latency stage reports them
    frame.insert(4, "speedup", [speedup[name] for name in sets])
    return frame


def table3_rows(eval_dirs: list[Path], variants: dict, steps: int, added: dict[str, dict],
                phases: dict[str, int]) -> pd.DataFrame:
    """Table 3: one row per ablation variant, its OD/PE/TC/GF switches, phase count (`phases[variant]`), scores
    at `steps` steps over the training seeds (`eval_dirs`, one per seed), the parameters its detail expert adds
    (`added[variant]`, from the dete stage; none without OD) and each row minus the one above it, paired video
    by video."""
    names = [f"{name}-{steps}" for name in variants]
    scores = {name: read_trainings(eval_dirs, name, True) for name in names}
    rows = []
    for number, ((name, flags), set_name) in enumerate(zip(variants.items(), names), start=1):
        extra = added[name] if flags["decouple"] else {"extra": 0, "backbone": None}
        rows.append({"row": f"({number})", "variant": name,
                     **{label: bool(flags[key]) for label, key in ABLATION_FLAGS}, "steps": steps,
                     "phases": phases[name],
                     **_score_columns(scores[set_name]), "extra_params": extra["extra"],
                     "extra_params_pct": 100 * extra["extra"] / extra["backbone"] if extra["extra"] else 0.0,
                     **paired_columns(scores[set_name], scores[names[number - 2]] if number > 1 else None)})
    return pd.DataFrame(rows)


def kappa_sweep_rows(eval_dirs: dict[int, Path], name: str, configured: int) -> pd.DataFrame:
    """Fig. 10 (right) as a table: the scores of sample set `name` at each kappa, the configured one marked."""
    return pd.DataFrame([{"kappa": kappa, "configured": kappa == configured,
                          **_score_columns([read_json(eval_dirs[kappa] / name / "scores.json")])}
                         for kappa in sorted(eval_dirs)])


def _cell(row: dict, key: str) -> str:
    value = row.get(key, "")
    if isinstance(value, bool):
        return "✓" if value else ""
    if value is None or (isinstance(value, float) and value != value):  # no value, or NaN from pandas
        return ""
    if key in SCORES:
        return f"{value:.2f} ± {row[f'{key}_std']:.2f}"
    if key == "paired_diff":
        return f"{value:+.2f} [{row['paired_low']:+.2f}, {row['paired_high']:+.2f}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(rows: list[dict] | pd.DataFrame,
                hide: tuple[str, ...] = (*(f"{k}_std" for k in SCORES), "paired_low", "paired_high")) -> str:
    """The rows as a Markdown table; scores as mean ± std over seeds, paired differences with their interval,
    booleans as check marks."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in hide]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r, k) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
