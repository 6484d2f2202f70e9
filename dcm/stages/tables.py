"""Stage `tables`: Tables 1 and 3 of the paper and the kappa sweep of Fig. 10 (right), as CSV and Markdown,
from the run's evaluation scores and latency files only (nothing is recomputed here)."""

from __future__ import annotations

import pandas as pd

from dcm import layout
from dcm.errors import DCMError
from dcm.io import atomic_path, read_json, write_json
from dcm.config import train_seeds
from dcm.methods import detail_variants, phase_count, seed_sets, sweep_set, table1_sets
from dcm.outputs import stage_output
from dcm.report.tables import kappa_sweep_rows, table1_rows, table3_rows, to_markdown
from dcm.schedule import PhaseSchedule

TABLES = ("1", "3", "kappa")


def _kappa_sweep(cfg: dict) -> pd.DataFrame:
    kappas = cfg["kappa_sweep"]["values"]
    if not kappas:
        raise DCMError("kappa_sweep.values is empty: there is no kappa sweep to tabulate")
    eval_dirs = {k: layout.require(layout.sweep_point(cfg, k) / "eval", "evaluate") for k in kappas}
    return kappa_sweep_rows(eval_dirs, sweep_set(cfg), PhaseSchedule.from_config(cfg).kappa)


def _eval_dirs(cfg: dict) -> list:
    """The scores of Tables 1 and 3, one directory per training seed (the run's first); the kappa sweep reads
    the run's own seed only."""
    return [layout.require(layout.train_seed_point(cfg, seed) / "eval", "evaluate") for seed in train_seeds(cfg)]


def run(cfg: dict, table: str) -> None:
    if table not in TABLES:
        raise DCMError(f"unknown table {table!r}: this stage makes tables {list(TABLES)} (Table 2 is `table2`)")
    run_dir = layout.run_dir(cfg)
    if table == "1":
        sets = table1_sets(cfg)
        phases = {name: phase_count(cfg, *layout.parse_sample_set(name)) for name in sets}
        latency = layout.require(layout.latency_dir(run_dir) / layout.LATENCY, "latency")
        rows = table1_rows(_eval_dirs(cfg), latency, sets, cfg["tables"]["method"], phases, set(seed_sets(cfg)))
    elif table == "3":
        added = {name: read_json(layout.require(layout.dete_dir(run_dir, name), "dete") / layout.PARAMETERS)
                 for name in detail_variants(cfg)}
        steps = cfg["tables"]["ablation_steps"]
        rows = table3_rows(_eval_dirs(cfg), cfg["variants"], steps, added,
                           {name: phase_count(cfg, name, steps) for name in cfg["variants"]})
    else:
        rows = _kappa_sweep(cfg)
    out = layout.table_dir(run_dir, table)
    name = out.name
    with stage_output(out, cfg) as work:
        with atomic_path(work / f"{name}.csv") as tmp:
            rows.to_csv(tmp, index=False)
        # for `dvc metrics show`; an empty cell is null, not NaN (which is not JSON)
        write_json(work / f"{name}.json", {"rows": rows.astype(object).where(rows.notna(), None).to_dict("records")})
        with atomic_path(work / f"{name}.md") as tmp:
            tmp.write_text(to_markdown(rows))
