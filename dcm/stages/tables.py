"""Stage `tables`: Tables 1 and 3 of the paper and the kappa sweep of Fig. 10 (right), as CSV and Markdown,
from the run's evaluation scores and latency files only (nothing is recomputed here)."""

from __future__ import annotations

from dcm.config import at_kappa
from dcm.errors import DCMError
from dcm.io import atomic_path, write_csv, write_json
from dcm.naming import table1_sets
from dcm.report.tables import kappa_sweep_rows, table1_rows, table3_rows, to_markdown
from dcm.stages.common import kappa_dir, require, stage_dir, stage_output

TABLES = {"1": "table1", "3": "table3", "kappa": "kappa_sweep"}


def _kappa_sweep(cfg: dict) -> list[dict]:
    kappas, configured = cfg["kappa_sweep"]["values"], cfg["schedule"]["kappa"]
    if not kappas:
        raise DCMError("kappa_sweep.values is empty: there is no kappa sweep to tabulate")
    eval_dirs = {k: require(kappa_dir(cfg if k == configured else at_kappa(cfg, k), "eval"), "evaluate")
                 for k in kappas}
    return kappa_sweep_rows(eval_dirs, f"{cfg['tables']['method']}-{cfg['tables']['ablation_steps']}", configured)


def run(cfg: dict, table: str) -> None:
    if table not in TABLES:
        raise DCMError(f"unknown table {table!r}: this stage makes tables {sorted(TABLES)} (Table 2 is `table2`)")
    if table == "1":
        rows = table1_rows(require(stage_dir(cfg, "eval"), "evaluate"), stage_dir(cfg, "samples"), table1_sets(cfg))
    elif table == "3":
        rows = table3_rows(require(stage_dir(cfg, "eval"), "evaluate"), cfg["variants"],
                           cfg["tables"]["ablation_steps"])
    else:
        rows = _kappa_sweep(cfg)
    name = TABLES[table]
    with stage_output(stage_dir(cfg, "tables", name), cfg) as work:
        write_csv(work / f"{name}.csv", rows)
        write_json(work / f"{name}.json", {"rows": rows})  # for `dvc metrics show`
        with atomic_path(work / f"{name}.md") as tmp:
            tmp.write_text(to_markdown(rows))
