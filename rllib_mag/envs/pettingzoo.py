"""Any PettingZoo ``ParallelEnv`` as a StarCraft-style backend (MPE2 maps registered by name).

Conventions:
- agents are ``sorted(env.possible_agents)``;
- the global state is ``env.state()`` (if the env has none: the agents' observations concatenated);
- observations are zero-padded to the largest agent observation and actions to the largest
  ``Discrete`` space (padded actions are masked), so heterogeneous teams fit one ``[N, D]`` array;
- the mask is the env's ``action_mask`` (from a ``{"observation", "action_mask"}`` obs dict or from
  ``infos[agent]["action_mask"]``) and all ones otherwise;
- an agent that leaves ``env.agents`` stays present as dead: zero obs, only ``noop_action`` allowed;
- the shared team reward is the ``mean`` (default) or ``sum`` of the agents' rewards of the step;
- an episode ends when no agent is left or all remaining agents are done, or after
  ``episode_limit`` steps; truncations (incl. MPE's ``max_cycles``) set ``info["episode_limit"]``.
  There is no win condition: ``battle_won`` is always False.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rllib_mag.envs.base import BackendBase, resolve_map

#: Map name -> (module exposing ``parallel_env``, default kwargs). Discrete actions throughout.
PETTINGZOO_MAPS: dict[str, tuple[str, dict[str, Any]]] = {
    "simple_spread": ("mpe2.simple_spread_v3", {"N": 3, "local_ratio": 0.5, "max_cycles": 25}),
    "simple_reference": ("mpe2.simple_reference_v3", {"local_ratio": 0.5, "max_cycles": 25}),
    "simple_speaker_listener": ("mpe2.simple_speaker_listener_v4", {"max_cycles": 25}),
}

_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda r: float(np.mean(r)) if r else 0.0,
    "sum": lambda r: float(np.sum(r)),
}


def make_parallel_env(map_name: str, **env_kwargs: Any) -> Any:
    """Build a registered PettingZoo map (``continuous_actions=False``) with ``env_kwargs`` overrides."""
    module, defaults = resolve_map(map_name, PETTINGZOO_MAPS, "pettingzoo")
    return importlib.import_module(module).parallel_env(**{**defaults, "continuous_actions": False, **env_kwargs})


class PettingZooBackend(BackendBase):
    """PettingZoo ``ParallelEnv`` behind the backend protocol.

    Args:
        map_name: a key of :data:`PETTINGZOO_MAPS` (ignored when ``env`` is given, except as a label).
        env: an existing ``ParallelEnv`` to wrap instead of a registered map.
        seed: seed of the next reset (None: the env's own randomness).
        reward: ``"mean"`` or ``"sum"`` of the agents' rewards as the team reward.
        noop_action: the only action a dead (removed) agent may take.
        episode_limit: step limit; default: the env's ``max_cycles`` if it has one.
        **env_kwargs: passed to the map's ``parallel_env`` (e.g. ``N``, ``local_ratio``, ``max_cycles``).
    """

    def __init__(
        self,
        map_name: str = "simple_spread",
        *,
        env: Any = None,
        seed: int | None = None,
        reward: str = "mean",
        noop_action: int = 0,
        episode_limit: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if reward not in _REDUCERS:
            raise ValueError(f"reward must be one of {sorted(_REDUCERS)}, got {reward!r}")
        if env is not None and env_kwargs:
            raise ValueError(f"env_kwargs {sorted(env_kwargs)} cannot be applied to a given env")
        self.env = env if env is not None else make_parallel_env(map_name, **env_kwargs)
        super().__init__(map_name)
        self._agent_ids = sorted(self.env.possible_agents)
        self._reduce = _REDUCERS[reward]
        self._seed = seed
        self._noop = int(noop_action)
        obs_spaces = [self._obs_space(a) for a in self._agent_ids]
        self._obs_dims = [int(np.prod(s.shape)) for s in obs_spaces]
        self._n_actions = [int(self.env.action_space(a).n) for a in self._agent_ids]
        self._obs_dim, self._a_dim = max(self._obs_dims), max(self._n_actions)
        if not 0 <= self._noop < min(self._n_actions):
            raise ValueError(f"noop_action {noop_action} is not a valid action of every agent")
        state_space = getattr(self.env, "state_space", None)
        self._state_dim = int(np.prod(state_space.shape)) if state_space is not None else self._obs_dim * len(self._agent_ids)
        limit = episode_limit if episode_limit is not None else getattr(self.env.unwrapped, "max_cycles", None)
        if limit is None:
            raise ValueError("episode_limit is required: the env has no max_cycles attribute")
        self._limit = int(limit)
        n = len(self._agent_ids)
        self._obs = np.zeros((n, self._obs_dim), np.float32)
        self._avail = np.zeros((n, self._a_dim), np.int8)
        self._alive = np.zeros(n, bool)
        self._steps = 0

    def _obs_space(self, agent: str) -> Any:
        space = self.env.observation_space(agent)
        return space["observation"] if hasattr(space, "spaces") and "observation" in space.spaces else space

    @property
    def agent_ids(self) -> list[str]:
        return self._agent_ids

    def get_env_info(self) -> dict[str, int]:
        return {
            "n_agents": len(self._agent_ids),
            "n_enemies": 0,
            "obs_shape": self._obs_dim,
            "state_shape": self._state_dim,
            "n_actions": self._a_dim,
            "episode_limit": self._limit,
        }

    def seed(self, seed: int | None = None) -> int | None:
        self._seed = seed
        return seed

    def _store(self, observations: Mapping[str, Any], infos: Mapping[str, Any], terminations: Mapping[str, bool]) -> None:
        """Cache padded obs / masks / alive flags; agents without obs or just terminated are dead."""
        self._obs[:] = 0.0
        self._avail[:] = 0
        for i, aid in enumerate(self._agent_ids):
            self._alive[i] = aid in observations and not terminations.get(aid, False)
            if not self._alive[i]:
                self._avail[i, self._noop] = 1
                continue
            obs, mask = observations[aid], infos.get(aid, {}).get("action_mask")
            if isinstance(obs, Mapping):
                obs, mask = obs["observation"], obs.get("action_mask", mask)
            self._obs[i, : self._obs_dims[i]] = np.ravel(obs)
            self._avail[i, : self._n_actions[i]] = 1 if mask is None else np.asarray(mask, dtype=np.int8)

    def _reset(self) -> None:
        observations, infos = self.env.reset(seed=self._seed)
        self._seed = None  # later resets continue the seeded RNG stream
        self._steps = 0
        self._store(observations, infos, {})

    def _step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        act = {aid: int(actions[i]) for i, aid in enumerate(self._agent_ids) if self._alive[i]}
        observations, rewards, terminations, truncations, infos = self.env.step(act)
        self._steps += 1
        self._store(observations, infos, terminations)
        remaining = [a for a in self.env.agents if not (terminations.get(a) or truncations.get(a))]
        timeout = any(truncations.values()) or self._steps >= self._limit
        done = not remaining or self._steps >= self._limit
        info: dict[str, Any] = {"battle_won": False}
        if done and timeout and not all(terminations.get(a, False) for a in act):
            info["episode_limit"] = True
        return self._reduce(list(rewards.values())), done, info

    def _get_obs(self) -> np.ndarray:
        return self._obs

    def _get_state(self) -> np.ndarray:
        if hasattr(self.env, "state_space"):
            return np.ravel(self.env.state()).astype(np.float32)
        return self._obs.ravel().copy()

    def _get_avail_actions(self) -> np.ndarray:
        return self._avail

    def _get_alive(self) -> np.ndarray:
        return self._alive

    def _close(self) -> None:
        self.env.close()
