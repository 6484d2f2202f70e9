"""The paired comparison of per-video scores against values worked out by hand and in closed form."""

import numpy as np
import pytest

from dcm.errors import DCMError
from dcm.eval.paired import paired_difference


def test_four_pairs_give_the_exact_sign_flip_p_value():
    # differences 1, 2, 3, 4: of the 2**4 sign patterns only all-plus and all-minus reach |mean| >= 2.5
    result = paired_difference([1, 2, 3, 4], [0, 0, 0, 0])
    assert result["diff"] == 2.5 and result["pairs"] == 4
    assert result["p_value"] == pytest.approx(2 / 16)
    assert 1.0 <= result["ci_low"] < 2.5 < result["ci_high"] <= 4.0


def test_differences_that_cancel_are_not_significant():
    # +-1, +-2: half the sign patterns reach |mean| >= 0, i.e. all of them
    result = paired_difference([1, -1, 2, -2], [0, 0, 0, 0])
    assert result["diff"] == 0.0 and result["p_value"] == 1.0
    assert result["ci_low"] < 0.0 < result["ci_high"]


def test_a_constant_difference_has_a_point_interval():
    result = paired_difference([3.0, 4.0, 5.0], [2.5, 3.5, 4.5])
    assert (result["diff"], result["ci_low"], result["ci_high"]) == (0.5, 0.5, 0.5)
    assert result["p_value"] == pytest.approx(2 / 8)  # exact: 3 pairs, 8 sign patterns


def test_the_interval_matches_the_normal_one_for_many_pairs():
    rng = np.random.default_rng(3)
    a = rng.normal(size=2000)
    b = a - 0.2 + rng.normal(scale=0.5, size=2000)
    result = paired_difference(a, b)
    diff = a - b
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))  # the CLT interval of a mean
    assert result["ci_low"] == pytest.approx(diff.mean() - half, abs=0.1 * half)
    assert result["ci_high"] == pytest.approx(diff.mean() + half, abs=0.1 * half)
    assert result["p_value"] < 1e-3


@pytest.mark.parametrize("a,b", [([1, 2], [1, 2, 3]), ([1], [2]), ([[1, 2]], [[1, 2]])])
def test_unpaired_inputs_are_refused(a, b):
    with pytest.raises(DCMError, match="paired comparison needs two equally long lists"):
        paired_difference(a, b)
