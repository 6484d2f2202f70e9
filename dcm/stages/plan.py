"""Stage `plan`: per GPU, what every GPU stage of the config holds (parameters, weights, gradients, optimizer
state, frozen copies, activations with and without checkpointing), the total against cluster.gpu_memory_gib and
whether it fits (dcm/memory_plan.py). Prints a table, or with --json a list of one object per stage."""

from __future__ import annotations

import json

from dcm.memory_plan import plan

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


def run(cfg: dict, as_json: bool = False) -> None:
    rows = plan(cfg)
    print(json.dumps(rows, indent=1) if as_json else table(rows))
