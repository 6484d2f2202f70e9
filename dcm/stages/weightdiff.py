"""Stage `weightdiff`: how far apart two fully trained experts (the OD variant's SemE and DetE) are, per
layer group, as JSON and a bar chart (paper Fig. 5)."""

from __future__ import annotations

from dcm.errors import DCMError
from dcm.eval.weight_difference import weight_difference
from dcm.io import write_json
from dcm.report.figures import plot_weight_difference
from dcm import layout
from dcm.backbones import load_teacher
from dcm.methods import variant_flags
from dcm.outputs import stage_output


def run(cfg: dict, variant: str = "od") -> None:
    flags = variant_flags(cfg, variant)
    if not flags["decouple"] or flags["parameter_efficient"]:
        raise DCMError(f"weightdiff needs two full experts: variant {variant!r} must have decouple: true and "
                       "parameter_efficient: false")
    backbone, _ = load_teacher(cfg)
    run_dir = layout.run_dir(cfg)
    semantic = backbone.load_network(layout.require(layout.seme_dir(run_dir, flags["temporal_coherence"]) / layout.NETWORK,
                                                    "seme"))
    detail = backbone.load_network(layout.require(layout.dete_dir(run_dir, variant) / layout.NETWORK, "dete"))
    result = weight_difference(semantic.state_dict(), detail.state_dict(), backbone)
    with stage_output(run_dir / "weightdiff", cfg) as work:
        write_json(work / "weight_difference.json", result)
        plot_weight_difference(result, work / "fig5_weight_difference.png")

