"""Stage `dete`: the detail expert on [0, kappa] with Eq. 7, plus GAN and feature matching (Eq. 10) when
the variant has GF. Parameter-efficient (PE): frozen SemE + LoRA + new timestep layers; otherwise (OD) a
second full network trained from the teacher."""

from __future__ import annotations

from dcm import distributed, layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.consistency import Adversarial
from dcm.discriminator import Discriminator
from dcm.distillation import feature_levels, fresh_student, pair_source, train_consistency
from dcm.errors import DCMError
from dcm.experts import attach_detail_expert, copied_layer_names, detail_state_dict
from dcm.io import save_tensors, write_json
from dcm.methods import variant_flags
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule


def run(cfg: dict, variant: str = "dcm") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"]:
        raise DCMError(f"variant {variant!r} has decouple: false, so it has no detail expert: run the vcm stage")
    phases, dcfg, point = PhaseSchedule.from_config(cfg), cfg["dete"], layout.own_point(cfg)
    backbone, teacher = load_teacher(cfg)
    seme = layout.seme_dir(point, flags["temporal_coherence"])
    if flags["parameter_efficient"]:
        net = backbone.load_network(layout.require(seme / layout.NETWORK, "seme"))
        student = attach_detail_expert(net, backbone, dcfg["lora_rank"], dcfg["lora_alpha"], dcfg["timestep_layers"])
    else:
        student = fresh_student(backbone, teacher_network_dir(cfg))
    cache = pair_source(cfg, backbone, teacher)
    adversarial = None
    if flags["gan"]:
        width, levels = feature_levels(backbone, teacher, cache.conditions([0]), dcfg["feature_stride"])
        heads = Discriminator(width, levels, checkpointing=cfg["backbone"]["gradient_checkpointing"])
        adversarial = Adversarial(backbone, teacher, heads, dcfg["feature_stride"], phases.detail_range, phases.sigmas,
                                  dcfg["gan_weight"], dcfg["fm_weight"])
    with stage_output(layout.dete_dir(point, variant), cfg) as work:
        train_consistency(cfg, "dete", backbone, student, phases.detail_edges, phases.detail_range, work, cache,
                          adversarial=adversarial, lr=dcfg["lr" if flags["parameter_efficient"] else "full_lr"])
        if distributed.is_main():  # the main process holds the whole expert
            detail = detail_state_dict(student) if flags["parameter_efficient"] else None
            write_json(work / layout.PARAMETERS, added_parameters(student, detail))
            if detail is not None:
                save_tensors(work / layout.DETAIL_WEIGHTS, detail)
                write_json(work / layout.DETAIL_CONFIG, {"lora_rank": dcfg["lora_rank"], "lora_alpha": dcfg["lora_alpha"],
                                                         "timestep_layers": list(copied_layer_names(backbone, dcfg["timestep_layers"])),
                                                         "seme": str(seme)})
        if not flags["parameter_efficient"]:
            backbone.save_network(student.net, work / layout.NETWORK)


def added_parameters(student, detail: dict | None) -> dict:
    """What the detail expert costs beyond the semantic one: its `detail` state (LoRA and copied timestep
    layers, PE) or, without one, a whole second network (OD), against the backbone's own parameter count
    (global counts under sharding)."""
    backbone = sum(p.numel() for name, p in student.net.named_parameters() if "lora_" not in name)
    return {"extra": backbone if detail is None else sum(v.numel() for v in detail.values()), "backbone": backbone}
