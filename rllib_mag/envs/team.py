"""The team view (docs/contracts.md §2): the whole team as one gymnasium agent.

:class:`TeamView` is the single place that turns a backend into spaces and observations;
both :class:`TeamEnv` and :class:`rllib_mag.envs.multi_agent.StarCraftMultiAgentEnv` use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rllib_mag.envs.base import StarCraftBackend, check_options, make_backend, replace_invalid_actions

TeamObs = dict[str, np.ndarray]

#: What a view does with an invalid (out-of-range or masked) action.
INVALID_ACTION_MODES = ("raise", "replace")


def team_spaces(n_agents: int, obs_dim: int, state_dim: int, n_actions: int) -> tuple[gym.spaces.Dict, gym.spaces.MultiDiscrete]:
    """Team observation space ``Dict(obs [N,D], state [S], action_mask [N,A], alive [N])`` and action space."""
    box = gym.spaces.Box
    obs_space = gym.spaces.Dict(
        {
            "obs": box(-np.inf, np.inf, (n_agents, obs_dim), np.float32),
            "state": box(-np.inf, np.inf, (state_dim,), np.float32),
            "action_mask": box(0.0, 1.0, (n_agents, n_actions), np.float32),
            "alive": box(0.0, 1.0, (n_agents,), np.float32),
        }
    )
    return obs_space, gym.spaces.MultiDiscrete([n_actions] * n_agents)


def episode_end(terminated: bool, info: Mapping[str, Any]) -> tuple[bool, bool]:
    """SMAC's ``terminated`` (any end) -> gymnasium's ``(terminated, truncated)``; time-outs truncate."""
    truncated = bool(terminated and info.get("episode_limit", False))
    return bool(terminated) and not truncated, truncated


class TeamView:
    """Backend -> team observations, spaces and gymnasium-style steps.

    ``invalid_actions="raise"`` (default) rejects invalid actions with a ``ValueError``;
    ``"replace"`` swaps them for the agent's first allowed action and reports how many in
    ``info["invalid_actions"]`` (for unmasked samplers such as RLlib's ``random_actions=True``).
    """

    def __init__(self, backend: StarCraftBackend, invalid_actions: str = "raise") -> None:
        if invalid_actions not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_actions must be one of {INVALID_ACTION_MODES}, got {invalid_actions!r}")
        info = backend.get_env_info()
        self.backend = backend
        self.invalid_actions = invalid_actions
        self.agent_ids: list[str] = list(backend.agent_ids)
        self.n_agents = int(info["n_agents"])
        self.obs_dim = int(info["obs_shape"])
        self.state_dim = int(info["state_shape"])
        self.n_actions = int(info["n_actions"])
        self.episode_limit = int(info["episode_limit"])
        self.observation_space, self.action_space = team_spaces(self.n_agents, self.obs_dim, self.state_dim, self.n_actions)

    @classmethod
    def from_config(cls, config: StarCraftBackend | Mapping[str, Any] | None, **kwargs: Any) -> TeamView:
        """A view over a backend instance, or over ``make_backend(config | kwargs)``.

        The view option ``invalid_actions`` may be given in either place.
        """
        if isinstance(config, StarCraftBackend):
            options = dict(kwargs)
            invalid = options.pop("invalid_actions", "raise")
            check_options(options, ["invalid_actions"], "a view over an existing backend")
            return cls(config, invalid)
        options = {**(config or {}), **kwargs}
        invalid = options.pop("invalid_actions", "raise")
        return cls(make_backend(options), invalid)

    def observe(self) -> TeamObs:
        """The current team observation (float32 copies; obs rows of dead agents are zero)."""
        b = self.backend
        alive = np.asarray(b.get_alive(), dtype=np.float32)
        return {
            "obs": np.asarray(b.get_obs(), dtype=np.float32) * alive[:, None],
            "state": np.array(b.get_state(), dtype=np.float32),
            "action_mask": np.asarray(b.get_avail_actions(), dtype=np.float32),
            "alive": alive,
        }

    def reset(self, seed: int | None = None) -> TeamObs:
        if seed is not None:
            self.backend.seed(seed)
        self.backend.reset()
        return self.observe()

    def step(self, actions: Any, check_mask: bool = True) -> tuple[TeamObs, float, bool, bool, dict[str, Any]]:
        """Apply a joint action; ``info`` gets ``battle_won`` on the final step. ``check_mask=False`` hands actions
        the mask forbids to the simulator as they are (see ``BackendBase.step``)."""
        n_invalid = 0
        if self.invalid_actions == "replace" and check_mask:
            actions, valid = replace_invalid_actions(actions, np.asarray(self.backend.get_avail_actions()))
            n_invalid = int((~valid).sum())
        reward, done, info = self.backend.step(actions, check_mask)
        terminated, truncated = episode_end(done, info)
        info = dict(info)
        if n_invalid:
            info["invalid_actions"] = n_invalid
        if done:
            info["battle_won"] = bool(self.backend.battle_won)
        return self.observe(), float(reward), terminated, truncated, info


class TeamEnv(gym.Env):
    """Single-agent ``gymnasium.Env``: the team acts with ``MultiDiscrete([A] * N)``.

    Args:
        config: a backend instance, or a dict ``{"backend": "smax"|"smac"|"pettingzoo",
            "map_name": ..., **backend options}`` (so ``env: rllib_mag.envs.team.TeamEnv`` works).
        **kwargs: more config entries; ``invalid_actions`` is the view option of :class:`TeamView`.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: StarCraftBackend | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.view = TeamView.from_config(config, **kwargs)
        self.observation_space = self.view.observation_space
        self.action_space = self.view.action_space

    @property
    def backend(self) -> StarCraftBackend:
        return self.view.backend

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[TeamObs, dict[str, Any]]:
        super().reset(seed=seed)
        return self.view.reset(seed), {}

    def step(self, action: Any) -> tuple[TeamObs, float, bool, bool, dict[str, Any]]:
        return self.view.step(action)

    def close(self) -> None:
        self.view.backend.close()
