"""Stage `seme`: the semantic expert, all parameters trained from the teacher on [kappa, N] with the
consistency loss of Eq. 6, plus the temporal coherence loss of Eq. 8 when the variant has TC."""

from __future__ import annotations

from dcm import layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.distillation import fresh_student, pair_source, train_consistency
from dcm.errors import DCMError
from dcm.methods import variant_flags
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def run(cfg: dict, variant: str = "dcm") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"]:
        raise DCMError(f"variant {variant!r} has decouple: false, so it has no semantic expert: run the vcm stage")
    phases = PhaseSchedule.from_config(cfg)
    backbone, teacher = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    with stage_output(layout.seme_dir(layout.own_point(cfg), flags["temporal_coherence"]), cfg) as work:
        train_consistency(cfg, "seme", backbone, student, phases.semantic_edges, phases.semantic_range, work,
                          pair_source(cfg, backbone, teacher), tc=flags["temporal_coherence"])
        backbone.save_network(student.net, work / layout.NETWORK)
