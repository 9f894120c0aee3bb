"""Builds MAG's torch components from the team observation space and the world-model settings.

One place decides the networks' sizes, so the learner's RLModule, the env runners' acting module and the
model-rollout actors always build identical (weight-compatible) networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from rllib_mag.models.actor_critic import Actor, AttentionCritic
from rllib_mag.models.config import WorldModelConfig, from_preset
from rllib_mag.models.world_model import WorldModel
from rllib_mag.planning.model_reward import ModelRewardPredictor


#: The networks a model-rollout actor needs (each built by `MAGCatalog.build_<name>`).
ROLLOUT_NETWORKS = ("world_model", "actor", "critic", "model_reward")


@dataclass(frozen=True)
class TeamSpaces:
    """Sizes read off the team observation space (`docs/contracts.md` §2)."""

    n_agents: int
    obs_dim: int
    n_actions: int

    @classmethod
    def from_space(cls, observation_space: gym.spaces.Dict) -> "TeamSpaces":
        if not isinstance(observation_space, gym.spaces.Dict) or not {"obs", "action_mask"} <= set(
                observation_space.spaces):
            raise ValueError("MAG acts on the team view of an env (Dict with obs [N, D] and action_mask [N, A]); "
                             f"use env 'smax_team', 'smac_team' or 'pettingzoo_team', got {observation_space}")
        n_agents, obs_dim = observation_space["obs"].shape
        return cls(n_agents, obs_dim, observation_space["action_mask"].shape[1])


class MAGCatalog:
    """Factory of the world model, actor, critic and R_m for one team env."""

    def __init__(self, observation_space: gym.spaces.Dict, world_model_settings: dict[str, Any],
                 device: str = "cpu") -> None:
        self.spaces = TeamSpaces.from_space(observation_space)
        self.config: WorldModelConfig = from_preset(**{**world_model_settings, "device": device})

    def build_world_model(self) -> WorldModel:
        return WorldModel(self.config, self.spaces.obs_dim, self.spaces.n_actions)

    def build_actor(self) -> Actor:
        return Actor(self.config, self.spaces.n_actions)

    def build_critic(self) -> AttentionCritic:
        return AttentionCritic(self.config)

    def build_model_reward(self) -> ModelRewardPredictor:
        return ModelRewardPredictor(self.config)
