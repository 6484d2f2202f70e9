"""Stage `trajdist`: the L1 distance between adjacent grid points of the cached teacher trajectories and the
kappa it suggests, as JSON and the plot of the paper's Fig. 10 (left)."""

from __future__ import annotations

from dcm.eval.trajectory_distance import trajectory_distance
from dcm.io import write_json
from dcm.report.figures import plot_trajectory_distance
from dcm import layout
from dcm.distillation import load_cache
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def run(cfg: dict) -> None:
    tcfg = cfg["trajdist"]
    cache, phases = load_cache(cfg), PhaseSchedule.from_config(cfg)
    data = trajectory_distance(cache.latents, phases.sigmas, tcfg["space"], tcfg["detail_share"])
    data["configured_kappa"] = phases.kappa
    with stage_output(layout.run_dir(cfg) / "trajdist", cfg) as work:
        write_json(work / "trajectory_distance.json", data)
        plot_trajectory_distance(data, work / "fig10.png")
