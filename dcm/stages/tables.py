"""Stage `tables`: Tables 1 and 3 of the paper, as CSV and Markdown, from the run's evaluation scores and
latency files only (nothing is recomputed here)."""

from __future__ import annotations

from dcm.errors import DCMError
from dcm.io import atomic_path, write_csv, write_json
from dcm.naming import table1_sets
from dcm.report.tables import table1_rows, table3_rows, to_markdown
from dcm.stages.common import require, stage_dir, stage_output

TABLES = {"1": "table1", "3": "table3"}


def run(cfg: dict, table: str) -> None:
    if table not in TABLES:
        raise DCMError(f"unknown table {table!r}: this stage makes tables {sorted(TABLES)} (Table 2 is `table2`)")
    eval_dir = require(stage_dir(cfg, "eval"), "evaluate")
    if table == "1":
        rows = table1_rows(eval_dir, stage_dir(cfg, "samples"), table1_sets(cfg))
    else:
        rows = table3_rows(eval_dir, cfg["variants"], cfg["tables"]["ablation_steps"])
    name = TABLES[table]
    with stage_output(stage_dir(cfg, "tables", name), cfg) as work:
        write_csv(work / f"{name}.csv", rows)
        write_json(work / f"{name}.json", {"rows": rows})  # for `dvc metrics show`
        with atomic_path(work / f"{name}.md") as tmp:
            tmp.write_text(to_markdown(rows))
