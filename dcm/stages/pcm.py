"""Stage `pcm`: the PCM baseline: one network of `phases` uniform sub-trajectories (--phases, else a fixed
pcm.phases), deterministic jumps to each phase's edge, no expert split; output <run>/pcm/<phases>/
(or seed/<S>/pcm/<phases>/ with --train-seed S)."""

from __future__ import annotations

from dcm import layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.distillation import fresh_student, pair_source, train_consistency
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def run(cfg: dict, phases: int) -> None:
    schedule = PhaseSchedule.from_config(cfg).with_pcm_phases(phases)
    backbone, teacher = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    with stage_output(layout.phased_trainer_dir(layout.trained_dir(cfg), "pcm", phases), cfg) as work:
        train_consistency(cfg, "pcm", backbone, student, schedule.edges("pcm"), (0, schedule.num_steps), work,
                          pair_source(cfg, backbone, teacher))
        backbone.save_network(student.net, work / layout.NETWORK)
