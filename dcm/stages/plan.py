"""Stage `plan`: per GPU, what every GPU stage of the config holds (parameters, weights, gradients, optimizer
state, frozen copies, activations with and without checkpointing), the total against cluster.gpu_memory_gib and
whether it fits (dcm/memory_plan.py); then what the teacher's pairs cost, cached or online (dcm/teacher_cost.py).
Prints two tables, or with --json one object {"stages": [one per stage], "teacher_pairs": {...}}."""

from __future__ import annotations

import json

from dcm.memory_plan import plan
from dcm.teacher_cost import teacher_cost

COLUMNS = ("stage", "variants", "gpus", "nodes", "strategy", "context_parallel", "micro_batch", "total_gib",
           "total_without_checkpointing_gib", "gpu_memory_gib", "fits")


def table(rows: list[dict]) -> str:
    """The plan as a Markdown table (one row per stage), its problems listed below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [", ".join(row.get(c, [])) if c == "variants" else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"- {row['stage']}: {problem}" for row in rows for problem in row["problems"]]
    return "\n".join(lines)


def size(n: int) -> str:
    """Bytes in decimal units (MB, GB, TB), three significant figures."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def pairs_table(cost: dict) -> str:
    """The teacher's pairs, cached and online, as a Markdown table (teacher_cost)."""
    videos = cost["videos"]
    lines = [f"| mode | bytes / video | bytes for {videos} videos | teacher forwards | teacher minutes | "
             "forwards in one SemE + DetE run |", "|---|---|---|---|---|---|"]
    for mode, unit in (("cached", "per video, once"), ("online", "per training sample")):
        c = cost[mode]
        minutes = "not stated" if c["teacher_minutes"] is None else f"{c['teacher_minutes']:g}"
        lines.append(f"| {mode} | {size(c['bytes_per_video'])} | {size(c['bytes_total'])} | "
                     f"{c['teacher_forwards']} {unit} | {minutes} | {c['run_teacher_forwards']} |")
    return "\n".join(lines)


def run(cfg: dict, as_json: bool = False) -> None:
    rows, cost = plan(cfg), teacher_cost(cfg)
    if as_json:
        print(json.dumps({"stages": rows, "teacher_pairs": cost}, indent=1))
        return
    print(table(rows) + "\n\nTeacher pairs (trajectories.mode):\n\n" + pairs_table(cost))
