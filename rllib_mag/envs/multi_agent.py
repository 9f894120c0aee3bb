"""RLlib ``MultiAgentEnv`` over any backend: one entry per agent, SMAC conventions.

Agents have fixed, ordered ids and stay present until the episode ends (dead agents get a zero
``obs`` and a mask that allows only the backend's no-op/stop); every agent receives the shared
team reward; the final infos of every agent carry ``battle_won``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_mag.envs.base import StarCraftBackend
from rllib_mag.envs.team import TeamObs, TeamView

AgentDict = dict[str, Any]


def shared_policy_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Policy mapping for parameter sharing: every agent uses policy ``"shared"``."""
    return "shared"


class StarCraftMultiAgentEnv(MultiAgentEnv):
    """Per-agent view: observation ``Dict(obs [D], state [S], action_mask [A])``, action ``Discrete(A)``.

    Args:
        config: a backend instance, or a dict ``{"backend": ..., "map_name": ..., **options}``.
        **kwargs: more config entries; ``invalid_actions`` is the view option of :class:`TeamView`.
    """

    def __init__(self, config: StarCraftBackend | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.view = TeamView.from_config(config, **kwargs)
        team_space = self.view.observation_space
        agent_space = gym.spaces.Dict(
            {
                "obs": gym.spaces.Box(-np.inf, np.inf, team_space["obs"].shape[1:], np.float32),
                "state": team_space["state"],
                "action_mask": gym.spaces.Box(0.0, 1.0, team_space["action_mask"].shape[1:], np.float32),
            }
        )
        self.possible_agents = list(self.view.agent_ids)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {aid: agent_space for aid in self.possible_agents}
        self.action_spaces = {aid: gym.spaces.Discrete(self.view.n_actions) for aid in self.possible_agents}

    @property
    def backend(self) -> StarCraftBackend:
        return self.view.backend

    def _split(self, team: TeamObs) -> AgentDict:
        return {
            aid: {"obs": team["obs"][i], "state": team["state"], "action_mask": team["action_mask"][i]}
            for i, aid in enumerate(self.possible_agents)
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[AgentDict, AgentDict]:
        team = self.view.reset(seed)
        self.agents = list(self.possible_agents)
        return self._split(team), {aid: {} for aid in self.possible_agents}

    def step(self, action_dict: Mapping[str, int]) -> tuple[AgentDict, AgentDict, AgentDict, AgentDict, AgentDict]:
        missing = [aid for aid in self.possible_agents if aid not in action_dict]
        unknown = [aid for aid in action_dict if aid not in self.observation_spaces]
        if missing or unknown:
            raise ValueError(f"action_dict must hold exactly the agents {self.possible_agents} (dead ones too); "
                             f"missing {missing}, unknown {unknown}")
        team, reward, terminated, truncated, info = self.view.step([action_dict[aid] for aid in self.possible_agents])
        ids = self.possible_agents
        terminateds = {aid: terminated for aid in ids} | {"__all__": terminated}
        truncateds = {aid: truncated for aid in ids} | {"__all__": truncated}
        if terminated or truncated:
            self.agents = []
        return self._split(team), {aid: reward for aid in ids}, terminateds, truncateds, {aid: dict(info) for aid in ids}

    def close(self) -> None:
        self.view.backend.close()
