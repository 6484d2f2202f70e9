"""Stage `weightdiff`: how far apart two fully trained experts (the OD variant's SemE and DetE) are, per
layer group, as JSON and a bar chart (paper Fig. 5)."""

from __future__ import annotations

from dcm.errors import DCMError
from dcm.eval.weight_difference import weight_difference
from dcm.io import write_json
from dcm.report.figures import plot_weight_difference
from dcm.stages.common import load_teacher, require, stage_dir, stage_output
from dcm.stages.distill import seme_dir, variant_flags


def run(cfg: dict, variant: str = "od") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"] or flags["parameter_efficient"]:
        raise DCMError(f"weightdiff needs two full experts: variant {variant!r} must have decouple: true and "
                       "parameter_efficient: false")
    backbone, _ = load_teacher(cfg)
    semantic = backbone.load_network(require(seme_dir(cfg, flags) / "network", "seme"))
    detail = backbone.load_network(require(stage_dir(cfg, "dete", variant) / "network", "dete"))
    result = weight_difference(semantic.state_dict(), detail.state_dict(), backbone)
    with stage_output(stage_dir(cfg, "weightdiff"), cfg) as work:
        write_json(work / "weight_difference.json", result)
        plot_weight_difference(result, work / "fig5_weight_difference.png")

