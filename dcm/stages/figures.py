"""Stage `figures`: the paper's figures as PNG from the run's result files: Fig. 2 (noise-level probe of the
VCM run), Fig. 3 (VCM, SemE+VCM, VCM+DetE, SemE+DetE from the same noise), Fig. 5 (expert weight
difference), Fig. 10 (adjacent-step distance and kappa; quality against kappa when the run has a kappa sweep) and
a qualitative grid of the Table 1 methods; on tinybench backbones also tinybench's scores against corrupted real
clips of the run's clip shape (tinybench_sweeps.png and .csv)."""

from __future__ import annotations

from pathlib import Path

from dcm.io import atomic_path, load_tensors, read_json
from dcm.report.figures import (plot_kappa_sweep, plot_noise_probe, plot_sample_grid, plot_tinybench_sweeps,
                                plot_trajectory_distance, plot_weight_difference)
from dcm import layout
from dcm.backbone_specs import backbone_spec
from dcm.eval.tinybench.sweeps import sweep
from dcm.methods import FIGURE3_PANELS, table1_sets
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule

def _videos(cfg: dict, name: str):
    directory = layout.require(layout.samples_dir(layout.run_dir(cfg), name), "sample")
    return load_tensors(directory / layout.SAMPLES)["videos"], read_json(directory / "meta.json")["prompts"]


def tinybench_sweeps(cfg: dict, work: Path) -> None:
    """tinybench_sweeps.csv and .png: the corruption sweep at the run's clip shape, object size and speed."""
    shape, data, settings = cfg["backbone"], cfg["data"], cfg["evaluate"]
    table = sweep(shape["frames"], shape["height"], shape["width"], data["object_size"], data["speed"],
                  settings["min_displacement"], settings["max_object_fraction"])
    with atomic_path(work / "tinybench_sweeps.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_tinybench_sweeps(table, work / "tinybench_sweeps.png")


def run(cfg: dict) -> None:
    steps, run_dir = cfg["tables"]["ablation_steps"], layout.run_dir(cfg)
    mix = {label: _videos(cfg, layout.sample_set(method, steps)) for label, method in FIGURE3_PANELS.items()}
    grid = {name: _videos(cfg, name) for name in table1_sets(cfg)}
    prompts = next(iter(mix.values()))[1]
    with stage_output(run_dir / "figures", cfg) as work:
        plot_noise_probe(read_json(layout.require(run_dir / "vcm" / "noise_probe.json", "vcm")),
                         work / "fig2_noise_probe.png")
        plot_sample_grid({label: videos for label, (videos, _) in mix.items()}, work / "fig3_expert_mix.png", prompts)
        plot_weight_difference(read_json(layout.require(run_dir / "weightdiff" / "weight_difference.json",
                                                        "weightdiff")), work / "fig5_weight_difference.png")
        trajdist = read_json(layout.require(run_dir / "trajdist" / "trajectory_distance.json", "trajdist"))
        plot_trajectory_distance(trajdist, work / "fig10_trajectory_distance.png")
        if cfg["kappa_sweep"]["values"]:
            sweep = layout.table_dir(run_dir, "kappa") / "kappa_sweep.json"
            plot_kappa_sweep(read_json(layout.require(sweep, "tables --table kappa"))["rows"], work / "fig10_kappa_sweep.png",
                             {"suggested": trajdist["suggested_kappa"], "configured": PhaseSchedule.from_config(cfg).kappa})
        for video in range(min(len(prompts), 4)):
            plot_sample_grid({name: videos for name, (videos, _) in grid.items()},
                             work / f"samples_prompt{video}.png", prompts, video=video)
        if backbone_spec(cfg).benchmark == "tinybench":
            tinybench_sweeps(cfg, work)
