"""Stage `pcm`: the PCM baseline: `pcm.phases` uniform sub-trajectories, deterministic jumps to each
phase's edge, no expert split."""

from __future__ import annotations

from dcm import layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.distillation import fresh_student, pair_source, train_consistency
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def run(cfg: dict) -> None:
    phases = PhaseSchedule.from_config(cfg)
    backbone, teacher = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    with stage_output(layout.trainer_dir(layout.run_dir(cfg), "pcm"), cfg) as work:
        train_consistency(cfg, "pcm", backbone, student, phases.edges("pcm"), (0, phases.num_steps), work,
                          pair_source(cfg, backbone, teacher))
        backbone.save_network(student.net, work / layout.NETWORK)
