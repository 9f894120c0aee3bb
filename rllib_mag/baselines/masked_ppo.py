"""RLlib's built-in PPO with a shared, action-masked policy: the model-free baseline.

The per-agent StarCraft env (`env: smax` / `smac` / `pettingzoo`) observes `Dict(obs, state, action_mask)`.
`MaskedPPOTorchRLModule` is RLlib's default PPO module on the concatenation `[obs, state]` (an MLP actor and
a critic that also sees the global state), with masked actions pushed to the lowest logit before sampling.
`MaskedPPOConfig` is `PPOConfig` with that module, one policy `shared` by every agent, and the win-rate metric.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.torch_utils import FLOAT_MIN

from rllib_mag.envs import check_env
from rllib_mag.metrics import WinRateCallback


def shared_policy(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Policy mapping: every agent acts with the one `shared` policy (parameter sharing)."""
    return "shared"


class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """Default PPO module on `[obs, state]` whose logits respect `action_mask`."""

    def __init__(self, *, observation_space: gym.spaces.Dict, **kwargs: Any) -> None:
        for key in ("obs", "state", "action_mask"):
            if not isinstance(observation_space, gym.spaces.Dict) or key not in observation_space.spaces:
                raise ValueError(f"MaskedPPOTorchRLModule needs a Dict observation with keys obs, state, "
                                 f"action_mask (rllib_mag's per-agent envs); got {observation_space}")
        flat_dim = observation_space["obs"].shape[0] + observation_space["state"].shape[0]
        flat_space = gym.spaces.Box(-np.inf, np.inf, (flat_dim,), np.float32)
        super().__init__(observation_space=flat_space, **kwargs)

    @staticmethod
    def _flatten(batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        obs = batch[Columns.OBS]
        flat = dict(batch)
        flat[Columns.OBS] = torch.cat([obs["obs"], obs["state"]], dim=-1)
        return flat, obs["action_mask"]

    @staticmethod
    def _mask(out: dict[str, Any], action_mask: torch.Tensor) -> dict[str, Any]:
        out[Columns.ACTION_DIST_INPUTS] = out[Columns.ACTION_DIST_INPUTS] + torch.clamp(
            torch.log(action_mask), min=FLOAT_MIN)
        return out

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        flat, action_mask = self._flatten(batch)
        return self._mask(super()._forward(flat, **kwargs), action_mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        flat, action_mask = self._flatten(batch)
        return self._mask(super()._forward_train(flat, **kwargs), action_mask)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        if embeddings is None:
            batch = self._flatten(batch)[0]
        return super().compute_values(batch, embeddings)


class MaskedPPOConfig(PPOConfig):
    """`PPOConfig` with the masked module, a shared policy and `env_runners/win_rate`."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or MaskedPPO)
        self.multi_agent(policies={"shared"}, policy_mapping_fn=shared_policy)
        self.callbacks(WinRateCallback)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=MaskedPPOTorchRLModule)

    def validate(self) -> None:
        check_env(self.env, self.env_config)  # registers "smax" etc. in a fresh process; typos fail here
        super().validate()


class MaskedPPO(PPO):
    """RLlib's PPO; only the default config differs (see `MaskedPPOConfig`)."""

    @classmethod
    def get_default_config(cls) -> MaskedPPOConfig:
        return MaskedPPOConfig()
