"""Stage `weightdiff`: how far apart two fully trained experts (the OD variant's SemE and DetE) are, per
layer group, as JSON and a bar chart (paper Fig. 5)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dcm.errors import DCMError  # noqa: E402
from dcm.eval.weight_difference import weight_difference  # noqa: E402
from dcm.io import atomic_path, write_json  # noqa: E402
from dcm.stages.common import load_teacher, require, stage_dir, stage_output  # noqa: E402
from dcm.stages.distill import seme_dir, variant_flags  # noqa: E402


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
        plot(result, work / "fig5_weight_difference.png")


def plot(result: dict, path) -> None:
    """Bar chart of the per-group distance with each tensor as a dot."""
    groups = list(result["groups"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(groups)), [result["groups"][g]["normalised_l1"] for g in groups], color="#8fb3d9")
    for i, g in enumerate(groups):
        values = [r["normalised_l1"] for r in result["tensors"] if r["group"] == g]
        ax.scatter([i] * len(values), values, s=8, color="#1f3b5c", zorder=3)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("normalised L1 distance")
    ax.set_title("SemE vs DetE weights (two full experts)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
