"""Stage `pcm`: the PCM baseline: `pcm.phases` uniform sub-trajectories, deterministic jumps to each
phase's edge, no expert split."""

from __future__ import annotations

from dcm.solvers import uniform_edges
from dcm.stages.common import load_teacher, stage_dir, stage_output, teacher_network_dir
from dcm.stages.distill import fresh_student, train_consistency


def run(cfg: dict) -> None:
    backbone, _ = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    n = cfg["schedule"]["num_steps"]
    with stage_output(stage_dir(cfg, "pcm"), cfg) as work:
        train_consistency(cfg, "pcm", backbone, student, uniform_edges(n, cfg["pcm"]["phases"]), (0, n), work)
        backbone.save_network(student.net, work / "network")
