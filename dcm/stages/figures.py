"""Stage `figures`: the paper's figures as PNG from the run's result files: Fig. 2 (noise-level probe of the
VCM run), Fig. 3 (VCM, SemE+VCM, VCM+DetE, SemE+DetE from the same noise), Fig. 5 (expert weight
difference), Fig. 10 (adjacent-step distance and kappa; quality against kappa when the run has a kappa sweep) and
a qualitative grid of the Table 1 methods; on tinybench backbones also tinybench's scores against corrupted real
clips of the run's clip shape (tinybench_sweeps.png and .csv); the Table 3 terms at work during training
(training_terms.png: TC's share of SemE's gradient, the discriminator's accuracy in DetE training); and Tables 1
and 3 as plots with their error bars (table1.png, table3.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcm.io import atomic_path, load_tensors, read_json, read_jsonl
from dcm.report.figures import (plot_kappa_sweep, plot_noise_probe, plot_sample_grid, plot_table1_scores,
                                plot_table3_scores, plot_tinybench_sweeps, plot_training_terms,
                                plot_trajectory_distance, plot_weight_difference)
from dcm import layout
from dcm.backbone_specs import backbone_spec
from dcm.errors import DCMError
from dcm.eval.tinybench.sweeps import sweep
from dcm.methods import FIGURE3_PANELS, adversarial_variants, table1_sets, temporal_coherence_trained
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


def _curves(directory: Path, made_by: str, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """Columns of a training stage's per-step metrics: {"step", and each name of `keys` -> the logged key}."""
    lines = read_jsonl(layout.require(directory / layout.METRICS, made_by))
    missing = [k for k in ("step", *keys.values()) if any(k not in line for line in lines)]
    if missing:
        raise DCMError(f"{directory / layout.METRICS}: lines without {missing[0]!r}")
    return {"step": np.array([line["step"] for line in lines]),
            **{name: np.array([line[key] for line in lines], dtype=float) for name, key in keys.items()}}


def term_curves(cfg: dict) -> tuple[dict, str, dict]:
    """The training-terms figure's curves from the run's metrics: per step, TC's share of the TC SemE's gradient
    (logged with seme.tc_share; otherwise its share of the loss, tc_weight * L_TC / (L_CD + tc_weight * L_TC)) with
    that share's label, and each GAN DetE's discriminator accuracy on real and on fake samples."""
    run_dir, share, label = layout.run_dir(cfg), {}, "TC share of the gradient"
    if temporal_coherence_trained(cfg):
        directory = layout.seme_dir(run_dir, True)
        if cfg["seme"].get("tc_share", False):
            share[directory.name] = _curves(directory, "seme", {"share": "tc_share"})
        else:
            label = "TC share of the loss (seme.tc_share off)"
            terms = _curves(directory, "seme", {"cd": "consistency", "tc": "temporal_coherence"})
            weighted = cfg["seme"]["tc_weight"] * terms["tc"]
            share[directory.name] = {"step": terms["step"], "share": weighted / (terms["cd"] + weighted)}
    accuracy = {variant: _curves(layout.dete_dir(run_dir, variant), "dete", {"real": "d_real_acc", "fake": "d_fake_acc"})
                for variant in adversarial_variants(cfg)}
    return share, label, accuracy


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
            sweep = layout.table_file(run_dir, "kappa", ".json")
            plot_kappa_sweep(read_json(layout.require(sweep, "tables --table kappa"))["rows"], work / "fig10_kappa_sweep.png",
                             {"suggested": trajdist["suggested_kappa"], "configured": PhaseSchedule.from_config(cfg).kappa})
        for table, plot in (("1", plot_table1_scores), ("3", plot_table3_scores)):
            rows = read_json(layout.require(layout.table_file(run_dir, table, ".json"), f"tables --table {table}"))
            plot(rows["rows"], work / f"table{table}.png")
        for video in range(min(len(prompts), 4)):
            plot_sample_grid({name: videos for name, (videos, _) in grid.items()},
                             work / f"samples_prompt{video}.png", prompts, video=video)
        share, label, accuracy = term_curves(cfg)
        if share or accuracy:
            plot_training_terms(share, label, accuracy, work / "training_terms.png")
        if backbone_spec(cfg).benchmark == "tinybench":
            tinybench_sweeps(cfg, work)
