"""PettingZoo adapter: source env API test, MPE2 maps, padding, team reward, dead agents, truncation."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test

from rllib_mag.envs.pettingzoo import PettingZooBackend, make_parallel_env
from rllib_mag.envs.team import TeamEnv


def test_source_env_passes_parallel_api_test() -> None:
    parallel_api_test(PettingZooBackend("simple_spread").env, num_cycles=30)


def test_simple_spread_shapes_reward_and_truncation() -> None:
    backend = PettingZooBackend("simple_spread", seed=0)
    assert backend.get_env_info() == {"n_agents": 3, "n_enemies": 0, "obs_shape": 18, "state_shape": 54, "n_actions": 5, "episode_limit": 25}
    reference = make_parallel_env("simple_spread")
    ref_obs, _ = reference.reset(seed=0)
    env = TeamEnv(backend)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["obs"][1], ref_obs["agent_1"])
    assert obs["action_mask"].min() == 1.0 and obs["state"].shape == (54,)
    for t in range(25):
        obs, reward, terminated, truncated, info = env.step([t % 5] * 3)
        _, ref_rewards, *_ = reference.step({a: t % 5 for a in reference.agents})
        assert reward == pytest.approx(np.mean(list(ref_rewards.values())))
    assert (terminated, truncated) == (False, True) and info == {"battle_won": False, "episode_limit": True}
    summed = PettingZooBackend("simple_spread", reward="sum", N=2)
    assert summed.get_env_info()["n_agents"] == 2


def test_heterogeneous_agents_are_padded_and_masked() -> None:
    env = TeamEnv({"backend": "pettingzoo", "map_name": "simple_speaker_listener"})
    obs, _ = env.reset(seed=0)
    assert env.view.agent_ids == ["listener_0", "speaker_0"]
    assert obs["obs"].shape == (2, 11) and obs["action_mask"].tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    with pytest.raises(ValueError, match="'speaker_0': action 4 is not available"):
        env.step([0, 4])


class _DyingAgents(ParallelEnv):
    """Two agents; ``b`` terminates after step 2, ``a`` after step 4. Obs carry an action mask."""

    metadata = {"name": "dying_v0"}
    possible_agents = ["b", "a"]

    def __init__(self) -> None:
        self.received: list[dict[str, int]] = []

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> gym.spaces.Space:
        return gym.spaces.Dict({"observation": gym.spaces.Box(0, 10, (2,)), "action_mask": gym.spaces.MultiBinary(3)})

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> gym.spaces.Space:
        return gym.spaces.Discrete(3)

    def _obs(self) -> dict[str, Any]:
        return {a: {"observation": np.full(2, self.t + 1, np.float32), "action_mask": np.array([1, 1, 0], np.int8)} for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, ...]:
        self.received.append(dict(actions))
        self.t += 1
        terms = {a: (a == "b" and self.t >= 2) or self.t >= 4 for a in self.agents}
        obs, rewards = self._obs(), {a: 1.0 for a in self.agents}
        infos = {a: {} for a in self.agents}
        truncs = {a: False for a in self.agents}
        self.agents = [a for a in self.agents if not terms[a]]
        return obs, rewards, terms, truncs, infos


def test_removed_agents_stay_dead_with_noop_mask() -> None:
    source = _DyingAgents()
    backend = PettingZooBackend("dying", env=source, episode_limit=10, reward="sum")
    env = TeamEnv(backend)
    obs, _ = env.reset()
    assert obs["action_mask"].tolist() == [[1, 1, 0], [1, 1, 0]]  # the env's own mask; agents sorted: a, b
    obs, reward, *_ = env.step([1, 1])
    obs, reward, terminated, _, _ = env.step([1, 1])  # b terminates here
    assert reward == 2.0 and not terminated
    assert obs["alive"].tolist() == [1.0, 0.0] and not obs["obs"][1].any()
    assert obs["action_mask"][1].tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="'b': action 1 is not available; allowed actions: \\[0\\]"):
        env.step([1, 1])
    _, reward, *_ = env.step([1, 0])
    assert source.received[-1] == {"a": 1} and reward == 1.0  # dead b's action not passed on
    _, _, terminated, truncated, info = env.step([1, 0])
    assert terminated and not truncated and info["battle_won"] is False


def test_pettingzoo_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown map 'simple_tagg' for the pettingzoo backend; available: simple_reference"):
        PettingZooBackend("simple_tagg")
    with pytest.raises(ValueError, match="reward must be one of"):
        PettingZooBackend(reward="max")
    with pytest.raises(ValueError, match="episode_limit is required"):
        PettingZooBackend(env=_DyingAgents())
