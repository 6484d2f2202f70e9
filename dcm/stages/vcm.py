"""Stage `vcm`: the vanilla consistency model of Table 3 row (1): one student, all parameters, trained on
both phases with the same phase edges [N, kappa, 0] as DCM but no expert split. On the way it probes the
consistency loss and its gradient norm by noise level (Fig. 2, `vcm.probe_every`)."""

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
    with stage_output(layout.trainer_dir(layout.trained_dir(cfg), "vcm"), cfg) as work:
        train_consistency(cfg, "vcm", backbone, student, phases.edges("experts"), (0, phases.num_steps), work,
                          pair_source(cfg, backbone, teacher), probe=True)
        backbone.save_network(student.net, work / layout.NETWORK)
