"""Fig. 10 (left): the normalised L1 distance between adjacent grid points of the cached teacher trajectories,
and the kappa it suggests (Sec. 5, "Selection of kappa").

Distances are taken either between the ODE states x_{t_n} themselves (`state`) or between the teacher's
clean-sample predictions at each grid point (`x0`, what a decoded "sampling result" of Fig. 2 (a) shows).
The x0 prediction needs no model call: the Euler step of Eq. 5 from n to n-1 used the velocity
v_n = (x_{t_{n-1}} - x_{t_n}) / (sigma_{n-1} - sigma_n), and x0 = x_t - sigma v.

Suggested kappa (the rule): the paper reads kappa off the curve where the distance "decreases to a very
small value" and "the remaining steps focus on synthesizing high-frequency details". We take the detail
phase [0, kappa] to be the longest tail of the trajectory that carries at most `detail_share` of its total
movement: kappa = max{k : sum_{n <= k} d_n <= detail_share * sum_n d_n}, with d_n the mean distance of
the step n -> n-1.
"""

from __future__ import annotations

import torch

from dcm.errors import DCMError

SPACES = ("x0", "state")


def predicted_x0_path(latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x0 predicted at every grid point of trajectories (K, N+1, ...): x0_n = x_n - sigma_n v_n with
    v_n = (x_{n-1} - x_n) / (sigma_{n-1} - sigma_n) read off the cached Euler step (Eq. 5); x0_0 = x_0."""
    x = latents.float()
    s = sigmas.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    velocity = (x[:, :-1] - x[:, 1:]) / (s[:, :-1] - s[:, 1:])
    return torch.cat([x[:, :1], x[:, 1:] - s[:, 1:] * velocity], dim=1)


def adjacent_l1(path: torch.Tensor) -> torch.Tensor:
    """d[k, n-1] = mean |y_n - y_{n-1}| / mean |y_0| for n = 1..N of paths (K, N+1, ...): the L1 step length
    normalised by the size of the clean end."""
    path = path.float()
    steps = (path[:, 1:] - path[:, :-1]).abs().mean(dim=tuple(range(2, path.ndim)))
    scale = path[:, 0].abs().mean(dim=tuple(range(1, path.ndim - 1))).clamp_min(1e-12)
    return steps / scale[:, None]


def suggest_kappa(distance: torch.Tensor, detail_share: float) -> int:
    """The largest k with sum_{n <= k} d_n <= detail_share * sum_n d_n, where distance[n-1] = d_n (module rule)."""
    if not 0 < detail_share < 1:
        raise DCMError(f"trajdist.detail_share={detail_share} must lie strictly between 0 and 1")
    total = float(distance.sum())
    if total <= 0:
        raise DCMError("the trajectories do not move between grid points: no kappa can be read off them")
    share = torch.cumsum(distance.double(), 0) / total
    return int((share <= detail_share + 1e-12).sum())


def trajectory_distance(latents: torch.Tensor, sigmas: torch.Tensor, space: str = "x0",
                        detail_share: float = 0.25, chunk: int = 64) -> dict:
    """Mean and standard deviation over trajectories of the adjacent-step distance d_n, n = 1..N, and the
    suggested kappa, for cached trajectories (K, N+1, ...) on the grid `sigmas` (N+1,)."""
    if space not in SPACES:
        raise DCMError(f"trajdist.space={space!r} must be one of {list(SPACES)}")
    if latents.ndim < 3 or latents.shape[1] != len(sigmas) or len(sigmas) < 2:
        raise DCMError(f"trajectories of shape {tuple(latents.shape)} do not match a grid of {len(sigmas)} sigmas")
    rows = []
    for first in range(0, len(latents), chunk):
        part = latents[first:first + chunk]
        rows.append(adjacent_l1(predicted_x0_path(part, sigmas) if space == "x0" else part))
    per_trajectory = torch.cat(rows).double()
    mean = per_trajectory.mean(0)
    std = per_trajectory.std(0) if len(per_trajectory) > 1 else torch.zeros_like(mean)
    return {"space": space, "index": list(range(1, len(sigmas))), "sigma": [float(s) for s in sigmas[1:]],
            "mean": mean.tolist(), "std": std.tolist(), "trajectories": len(per_trajectory),
            "detail_share": detail_share, "suggested_kappa": suggest_kappa(mean, detail_share),
            "rule": "largest k with sum_{n<=k} d_n <= detail_share * sum_n d_n"}
