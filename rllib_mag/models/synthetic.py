"""Random batches that follow docs/contracts.md section 3, for tests and benchmarks (no environment needed)."""

from __future__ import annotations

import torch
from torch import Tensor


def random_sequence_batch(T: int, B: int, N: int, obs_dim: int, n_actions: int, seed: int = 0,
                          structured: bool = False, device: str = "cpu") -> dict[str, Tensor]:
    """A ``[T, B, ...]`` sequence batch. Sequence 1 (if any) ends an episode (terminal) at row ``T // 2 - 1`` and
    starts a new one at ``T // 2``; agent 0 of sequence 0 is dead for the last two rows.

    ``structured=True`` makes the action masks and the reward functions of the observations, so that a model can
    fit them; otherwise they are random.
    """
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, B, N, obs_dim, generator=g)
    is_first, is_last = torch.zeros(T, B), torch.zeros(T, B)
    is_first[0] = 1.0
    if B > 1 and T >= 4:
        is_last[T // 2 - 1, 1], is_first[T // 2, 1] = 1.0, 1.0
    action = torch.randint(0, n_actions, (T, B, N), generator=g)
    action[is_last.bool()] = 0
    if structured:
        action_mask = (obs[..., :n_actions] > -0.5).float()
        reward = obs[..., 0].mean(-1)
    else:
        action_mask = (torch.rand(T, B, N, n_actions, generator=g) > 0.3).float()
        reward = torch.randn(T, B, generator=g)
    action_mask[..., 0] = 1.0  # the no-op stays available, as in SMAC
    alive = torch.ones(T, B, N)
    alive[-2:, 0, 0] = 0.0
    batch = dict(obs=obs, action_mask=action_mask, alive=alive, action=action, reward=reward * (1.0 - is_first),
                 is_first=is_first, is_last=is_last, is_terminal=is_last.clone())
    return {k: v.to(device) for k, v in batch.items()}
