"""Paired comparison of two sample sets scored video by video on the same prompts from the same noise: the
mean per-video difference, its bootstrap 95% interval and a two-sided sign-flip permutation p-value."""

from __future__ import annotations

import numpy as np

from dcm.errors import DCMError

CONFIDENCE = 0.95
RESAMPLES = 10_000


def paired_difference(a, b, seed: int = 0) -> dict:
    """Mean of a - b over paired videos, the percentile bootstrap interval of that mean and the permutation
    p-value of "no difference" (each pair's sign flipped at random; exact when 2**n <= RESAMPLES)."""
    from scipy import stats  # here: every evaluate job imports the tables module, only the tables job needs this

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise DCMError(f"a paired comparison needs two equally long lists of at least 2 per-video scores, "
                       f"got shapes {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    if np.ptp(diff) == 0:  # every resample has the same mean: the interval is that point
        low = high = float(diff[0])
    else:
        interval = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                                   method="percentile", rng=rng).confidence_interval
        low, high = float(interval.low), float(interval.high)
    test = stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                  n_resamples=RESAMPLES, alternative="two-sided", rng=rng)
    return {"diff": float(diff.mean()), "ci_low": low, "ci_high": high, "p_value": float(test.pvalue),
            "pairs": len(diff)}
