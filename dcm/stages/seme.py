"""Stage `seme`: the semantic expert, all parameters trained from the teacher on [kappa, N] with the
consistency loss of Eq. 6, plus the temporal coherence loss of Eq. 8 when the variant has TC."""

from __future__ import annotations

from dcm.errors import DCMError
from dcm.solvers import dcm_edges
from dcm.stages.common import load_teacher, stage_output, teacher_network_dir
from dcm.stages.distill import fresh_student, seme_dir, train_consistency, variant_flags


def run(cfg: dict, variant: str = "dcm") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"]:
        raise DCMError(f"variant {variant!r} has decouple: false, so it has no semantic expert: run the vcm stage")
    backbone, _ = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    n, kappa = cfg["schedule"]["num_steps"], cfg["schedule"]["kappa"]
    with stage_output(seme_dir(cfg, flags), cfg) as work:
        train_consistency(cfg, "seme", backbone, student, dcm_edges(n, kappa)[:2], (kappa, n), work,
                          tc=flags["temporal_coherence"])
        backbone.save_network(student.net, work / "network")
