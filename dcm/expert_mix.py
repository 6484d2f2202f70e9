"""Fig. 3 (b, c): samplers that mix denoisers by phase, the semantic phase [kappa, N] by SemE or the VCM
student and the detail phase [0, kappa] by DetE or the VCM student (the paper's SemE+VCM and VCM+DetE).

Method names: `<semantic>+<detail>[@variant]` with semantic in {seme, vcm} and detail in {dete, vcm}; the
experts come from `variant` (default `od`: Sec. 3.2's two distinct students trained with the consistency
loss alone, as VCM is)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dcm.errors import DCMError
from dcm.experts import Denoiser, switch_experts
from dcm.naming import MixedMethod

def mixed_denoiser(mix: MixedMethod, loaders: Mapping[str, Callable[[], Denoiser]], sigma_kappa: float) -> Denoiser:
    """The denoiser of `mix`: loaders["seme"|"vcm"] for sigma > sigma_kappa, loaders["dete"|"vcm"] at or below;
    only the loaders it needs are called, the VCM student once even when it runs both phases."""
    missing = sorted({mix.semantic, mix.detail} - set(loaders))
    if missing:
        raise DCMError(f"mixed method {mix}: no loader for {missing}")
    loaded = {name: loaders[name]() for name in dict.fromkeys((mix.semantic, mix.detail))}
    return switch_experts(loaded[mix.semantic], loaded[mix.detail], sigma_kappa)
