"""`python -m dcm all`: every stage in dependency order on one config, skipping stages whose output exists
(the Snakemake workflow does the same with finer-grained rules)."""

from __future__ import annotations

import importlib
import logging

from dcm import tracking
from dcm.stages.common import stage_dir
from dcm.stages.distill import seme_dir, variant_flags

log = logging.getLogger("dcm")


def plan(cfg: dict, variant: str) -> list[tuple[str, dict, object]]:
    """(stage, keyword arguments, output directory) for every stage of one reproduction."""
    steps = [("dataset", {}, stage_dir(cfg, "dataset")), ("teacher", {}, stage_dir(cfg, "teacher")),
             ("trajectories", {}, stage_dir(cfg, "trajectories"))]
    for name in dict.fromkeys([variant, "od"]):  # od: the two full experts of the Fig. 5 analysis
        name_flags = variant_flags(cfg, name)
        if name_flags["decouple"]:
            steps += [("seme", {"variant": name}, seme_dir(cfg, name_flags)),
                      ("dete", {"variant": name}, stage_dir(cfg, "dete", name))]
    steps.append(("weightdiff", {"variant": "od"}, stage_dir(cfg, "weightdiff")))
    steps += [(name, {}, stage_dir(cfg, name)) for name in ("vcm", "lcm", "pcm")]
    sampling = cfg["sampling"]
    runs = [("teacher", sampling["teacher_steps"])]
    runs += [(m, k) for k in sampling["steps"] for m in ("teacher", "lcm", "pcm", "vcm", variant)]
    steps += [("sample", {"method": m, "steps": k}, stage_dir(cfg, "samples", f"{m}-{k}"))
              for m, k in dict.fromkeys(runs)]
    return steps + [("compare", {}, stage_dir(cfg, "compare"))]


def run(cfg: dict, variant: str = "dcm") -> None:
    for stage, kwargs, out in plan(cfg, variant):
        if out.exists() and stage != "compare":  # compare reads every sample set, so it always reruns
            log.info("skip %s %s: %s exists", stage, kwargs, out)
            continue
        log.info("run %s %s", stage, kwargs)
        with tracking.stage_run(cfg, stage, **kwargs):
            importlib.import_module(f"dcm.stages.{stage}").run(cfg, **kwargs)
