"""Stage `vcm`: the vanilla consistency model of Table 3 row (1): one student, all parameters, trained on
both phases with the same phase edges [N, kappa, 0] as DCM but no expert split. On the way it probes the
consistency loss and its gradient norm by noise level (Fig. 2, `vcm.probe_every`)."""

from __future__ import annotations

from dcm.solvers import dcm_edges
from dcm.stages.common import load_teacher, stage_dir, stage_output, teacher_network_dir
from dcm.stages.distill import fresh_student, train_consistency


def run(cfg: dict) -> None:
    backbone, _ = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    n, kappa = cfg["schedule"]["num_steps"], cfg["schedule"]["kappa"]
    with stage_output(stage_dir(cfg, "vcm"), cfg) as work:
        train_consistency(cfg, "vcm", backbone, student, dcm_edges(n, kappa), (0, n), work, probe=True)
        backbone.save_network(student.net, work / "network")
