"""TD(lambda) returns of imagined rollouts (reference MAMBA/MAG ``agent/optim/utils.py:compute_return``)."""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(reward: Tensor, discount: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """``G_t = r_t + gamma * d_t * ((1 - lam) * V_{t+1} + lam * G_{t+1})`` with ``G_k = V_k``.

    Args:
        reward, discount: ``[M, k]`` (team reward and continue probability of ``s_{t+1}``) or ``[M, k, ...]``.
        values: ``[M, k+1, ...]`` critic values of ``s_0..s_k`` (e.g. ``[M, k+1, N]``: one per agent).
    Returns:
        ``[M, k, ...]`` returns, one per value.
    """
    if values.shape[1] != reward.shape[1] + 1:
        raise ValueError(f"values need k+1={reward.shape[1] + 1} steps, got {values.shape[1]}")
    extra = values.dim() - reward.dim()
    reward = reward.reshape(*reward.shape, *([1] * extra))
    discount = discount.reshape(*discount.shape, *([1] * extra))
    returns = torch.empty_like(values[:, :-1])
    next_return = values[:, -1]
    for t in reversed(range(reward.shape[1])):
        next_return = reward[:, t] + gamma * discount[:, t] * ((1 - lam) * values[:, t + 1] + lam * next_return)
        returns[:, t] = next_return
    return returns
