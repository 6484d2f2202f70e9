"""Stage `dete`: the detail expert on [0, kappa] with Eq. 7, plus GAN and feature matching (Eq. 10) when
the variant has GF. Parameter-efficient (PE): frozen SemE + LoRA + new timestep layers; otherwise (OD) a
second full network trained from the teacher."""

from __future__ import annotations

from dcm.consistency import Adversarial
from dcm.discriminator import Discriminator
from dcm.errors import DCMError
from dcm.experts import attach_detail_expert, detail_state_dict
from dcm.io import save_tensors, write_json
from dcm.solvers import dcm_edges
from dcm.stages.common import grid, kappa_dir, load_teacher, require, stage_output, teacher_network_dir
from dcm.stages.distill import (feature_levels, fresh_student, load_cache, seme_dir, train_consistency,
                                variant_flags)

DETAIL_WEIGHTS = "detail_expert.safetensors"
DETAIL_CONFIG = "detail_expert.json"


def run(cfg: dict, variant: str = "dcm") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"]:
        raise DCMError(f"variant {variant!r} has decouple: false, so it has no detail expert: run the vcm stage")
    backbone, teacher = load_teacher(cfg)
    dcfg, kappa = cfg["dete"], cfg["schedule"]["kappa"]
    if flags["parameter_efficient"]:
        net = backbone.load_network(require(seme_dir(cfg, flags) / "network", "seme"))
        student = attach_detail_expert(net, backbone, dcfg["lora_rank"], dcfg["lora_alpha"])
    else:
        student = fresh_student(backbone, teacher_network_dir(cfg))
    adversarial = None
    if flags["gan"]:
        width, levels = feature_levels(backbone, teacher, load_cache(cfg).cond.float(), dcfg["feature_stride"])
        adversarial = Adversarial(backbone, teacher, Discriminator(width, levels), dcfg["feature_stride"],
                                  (0, kappa), grid(cfg), dcfg["gan_weight"], dcfg["fm_weight"])
    with stage_output(kappa_dir(cfg, "dete", variant), cfg) as work:
        train_consistency(cfg, "dete", backbone, student, dcm_edges(cfg["schedule"]["num_steps"], kappa)[1:],
                          (0, kappa), work, adversarial=adversarial)
        if flags["parameter_efficient"]:
            save_tensors(work / DETAIL_WEIGHTS, detail_state_dict(student))
            write_json(work / DETAIL_CONFIG, {"lora_rank": dcfg["lora_rank"], "lora_alpha": dcfg["lora_alpha"],
                                              "seme": str(seme_dir(cfg, flags))})
        else:
            backbone.save_network(student.net, work / "network")
