"""Fig. 3 mixed samplers: method names and the phase switch between the chosen denoisers."""

import pytest
import torch

from dcm.errors import DCMError
from dcm.expert_mix import mixed_denoiser
from dcm.naming import MixedMethod, parse_mixed_method


def test_mixed_method_names_and_denoiser():
    assert parse_mixed_method("vcm") is None and parse_mixed_method("dcm") is None
    assert parse_mixed_method("seme+vcm") == MixedMethod("seme", "vcm", "od")
    assert parse_mixed_method("vcm+dete@dcm") == MixedMethod("vcm", "dete", "dcm")
    for bad in ("dete+seme", "seme+vcm@", "vcm+lcm", "seme+"):
        with pytest.raises(DCMError, match="expected <seme|vcm>"):
            parse_mixed_method(bad)
    calls = []

    def loader(name, value):
        calls.append(name)
        return lambda x, sigma, cond: torch.full_like(x, value)

    loaders = {"seme": lambda: loader("seme", 1.0), "vcm": lambda: loader("vcm", 2.0), "dete": lambda: loader("dete", 3.0)}
    denoise = mixed_denoiser(MixedMethod("seme", "vcm"), loaders, sigma_kappa=0.5)
    assert calls == ["seme", "vcm"]  # dete is never loaded
    out = denoise(torch.zeros(3, 2), torch.tensor([0.9, 0.5, 0.1]), torch.zeros(3, 1))
    assert out[:, 0].tolist() == [1.0, 2.0, 2.0]  # SemE above sigma_kappa, VCM at and below it
    calls.clear()
    vcm_only = mixed_denoiser(MixedMethod("vcm", "vcm"), loaders, 0.5)
    assert calls == ["vcm"] and vcm_only(torch.zeros(1, 2), torch.tensor([0.9]), torch.zeros(1, 1)).sum() == 4.0
    with pytest.raises(DCMError, match="no loader"):
        mixed_denoiser(MixedMethod("seme", "dete"), {"seme": loaders["seme"]}, 0.5)
