"""Vectorized SMAX team env: ``num_envs`` copies stepped by ONE vmapped, jitted call.

Observations/actions are those of :class:`rllib_mag.envs.team.TeamEnv`, batched. Auto-reset
follows gymnasium 1.x's default ``NEXT_STEP`` mode, which is what RLlib 2.60's
``SingleAgentEnvRunner`` expects: the step that ends a copy's episode returns its *terminal*
observation (so nothing is lost and no ``final_obs`` info is needed); the next ``step`` resets that
copy (its actions are ignored) and returns the first observation of the new episode with reward 0.

Use inside RLlib (after ``rllib_mag.register()``)::

    config.environment("smax_team", env_config={"map_name": "3s_vs_5z"})
          .env_runners(num_envs_per_env_runner=64, gym_env_vectorize_mode="vector_entry_point")
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rllib_mag.envs.base import check_actions, replace_invalid_actions
from rllib_mag.envs.smax import SMAC_REWARD_SCALE, SMAXOutput, default_seed, smax_core, smax_options
from rllib_mag.envs.team import INVALID_ACTION_MODES, TeamObs, team_spaces


class SMAXTeamVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` SMAX team envs in one ``jax.vmap``; same options as :class:`SMAXBackend`
    plus the view option ``invalid_actions`` (see :class:`rllib_mag.envs.team.TeamView`).

    Copy ``i`` is seeded with ``seed + i`` (as gymnasium's vector envs do). ``infos`` holds
    ``battle_won`` (on finished copies) and ``episode_limit`` (on timed-out copies), each with
    gymnasium's ``_name`` mask.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 8,
        map_name: str = "3s_vs_5z",
        *,
        seed: int | None = None,
        episode_limit: int | None = None,
        reward_scale_to_smac: bool = True,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
        walls_cause_death: bool = True,
        invalid_actions: str = "raise",
    ) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if invalid_actions not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_actions must be one of {INVALID_ACTION_MODES}, got {invalid_actions!r}")
        self.invalid_actions = invalid_actions
        options = smax_options(map_name, episode_limit, enemy_shoots, attack_mode, walls_cause_death)
        self.core = smax_core(options)
        self.num_envs = int(num_envs)
        self.map_name = map_name
        self.reward_scale = SMAC_REWARD_SCALE if reward_scale_to_smac else 1.0
        self.agent_ids = [f"ally_{i}" for i in range(self.core.n_agents)]
        self.single_observation_space, self.single_action_space = team_spaces(
            self.core.n_agents, self.core.obs_dim, self.core.state_dim, self.core.n_actions
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._seed = default_seed(seed)
        self._keys: Any = None
        self._states: Any = None
        self._out: SMAXOutput | None = None
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def _seed_keys(self, seed: int) -> None:
        import jax
        import jax.numpy as jnp

        self._keys = jnp.stack([jax.random.PRNGKey(seed + i) for i in range(self.num_envs)])

    def _observe(self) -> TeamObs:
        out = self._out
        alive = out.alive.astype(np.float32)
        return {
            "obs": out.obs * alive[..., None],
            "state": out.state.copy(),
            "action_mask": out.avail.astype(np.float32),
            "alive": alive,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[TeamObs, dict[str, Any]]:
        """Reset all copies (``seed``: copy i gets ``seed + i``)."""
        self._require_open("reset")
        if seed is not None or self._keys is None:
            self._seed = self._seed if seed is None else int(seed)
            self._seed_keys(self._seed)
        self._keys, self._states, packed = self.core.vreset(self._keys)
        self._out = self.core.unpack(packed)
        self._needs_reset[:] = False
        return self._observe(), {}

    def _check_actions(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated int32 actions ``[num_envs, N]`` and the number replaced per copy."""
        avail = self._out.avail
        if np.shape(actions) != avail.shape[:-1]:
            raise ValueError(f"expected actions of shape {avail.shape[:-1]} (envs x agents), got {np.shape(actions)}")
        fixed, valid = replace_invalid_actions(actions, avail)
        invalid = (~valid).sum(axis=1) * ~self._needs_reset  # actions of resetting copies are ignored
        if self.invalid_actions == "raise" and invalid.any():
            bad = int(np.flatnonzero(invalid)[0])
            try:
                check_actions(np.asarray(actions)[bad], avail[bad], self.agent_ids)
            except ValueError as err:
                raise ValueError(f"sub-env {bad}: {err}") from None
        return fixed.astype(np.int32), invalid

    def step(self, actions: Any) -> tuple[TeamObs, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._require_open("step")
        if self._states is None:
            raise RuntimeError("SMAXTeamVectorEnv.step() called before reset()")
        acts, invalid = self._check_actions(actions)
        self._keys, self._states, packed = self.core.vstep_autoreset(self._keys, self._states, acts, self._needs_reset)
        out = self._out = self.core.unpack(packed)
        terminated, truncated, won = out.terminated, out.truncated, out.won
        done = terminated | truncated
        self._needs_reset = done.copy()
        infos: dict[str, Any] = {}
        if done.any():
            infos = {"battle_won": won & done, "_battle_won": done}
        if truncated.any():
            infos.update(episode_limit=truncated.copy(), _episode_limit=truncated.copy())
        if invalid.any():
            infos.update(invalid_actions=invalid, _invalid_actions=invalid > 0)
        return (
            self._observe(),
            out.reward * np.float32(self.reward_scale),
            terminated.copy(),
            truncated.copy(),
            infos,
        )

    def _require_open(self, what: str) -> None:
        if self.closed:
            raise RuntimeError(f"SMAXTeamVectorEnv.{what}() called after close()")

    def close_extras(self, **kwargs: Any) -> None:
        self._keys = self._states = None
