"""Per-agent MultiAgentEnv and team view over SMAX: checkers, dead agents, wins, limits, registration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from rllib_mag.envs import ENV_NAMES, env_creator, register_envs
from rllib_mag.envs.multi_agent import StarCraftMultiAgentEnv, shared_policy_mapping
from rllib_mag.envs.smax import SMAXBackend
from rllib_mag.envs.team import TeamEnv

STOP = 4


def test_rllib_multiagent_checker(smax: SMAXBackend) -> None:
    env = StarCraftMultiAgentEnv(smax, invalid_actions="replace")  # the checker samples unmasked actions
    check_multiagent_environments(env)
    assert env.possible_agents == ["ally_0", "ally_1", "ally_2"]
    space = env.observation_spaces["ally_0"]
    assert {k: v.shape for k, v in space.spaces.items()} == {"obs": (101,), "state": (96,), "action_mask": (10,)}
    assert env.action_spaces["ally_2"] == gym.spaces.Discrete(10)
    assert shared_policy_mapping("ally_1", None) == "shared"


def test_gymnasium_checker_on_team_env(smax: SMAXBackend) -> None:
    env = TeamEnv(smax, invalid_actions="replace")  # check_env steps with unmasked random actions
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert {k: v.shape for k, v in obs.items()} == {"obs": (3, 101), "state": (96,), "action_mask": (3, 10), "alive": (3,)}
    assert env.action_space == gym.spaces.MultiDiscrete([10] * 3)
    assert env.observation_space.contains(obs)


def test_multiagent_episode_dead_agents_and_final_infos(smax: SMAXBackend) -> None:
    env = StarCraftMultiAgentEnv(smax)
    obs, infos = env.reset(seed=5)
    rng = np.random.default_rng(5)
    done, saw_dead = False, False
    while not done:
        actions = {aid: int(rng.choice(np.flatnonzero(o["action_mask"]))) for aid, o in obs.items()}
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert set(obs) == set(env.possible_agents)  # dead agents stay present
        assert len(set(rewards.values())) == 1  # shared team reward
        for i, aid in enumerate(env.possible_agents):
            if not smax.get_alive()[i]:
                saw_dead = True
                assert not obs[aid]["obs"].any() and obs[aid]["action_mask"].tolist() == np.eye(10)[STOP].tolist()
        done = terms["__all__"] or truncs["__all__"]
    assert saw_dead and terms["__all__"] and not truncs["__all__"]
    assert all(infos[aid]["battle_won"] is False for aid in env.possible_agents) and env.agents == []


def test_truncation_on_episode_limit(smax_short: SMAXBackend) -> None:
    team, per_agent = TeamEnv(smax_short), StarCraftMultiAgentEnv(smax_short)
    team.reset(seed=0)
    for t in range(5):
        _, _, terminated, truncated, info = team.step([STOP] * 3)
    assert (terminated, truncated) == (False, True) and info == {"battle_won": False, "episode_limit": True}
    per_agent.reset(seed=0)
    for t in range(5):
        _, _, terms, truncs, infos = per_agent.step({aid: STOP for aid in per_agent.possible_agents})
    assert truncs == {"ally_0": True, "ally_1": True, "ally_2": True, "__all__": True} and not terms["__all__"]
    assert infos["ally_0"]["episode_limit"] is True


def test_team_env_win_flag(smax: SMAXBackend) -> None:
    env = TeamEnv(smax)
    env.reset(seed=0)
    inner = smax.jax_state.state
    smax._state = smax.jax_state.replace(state=inner.replace(unit_health=inner.unit_health.at[3:].set(0.0)))
    obs, reward, terminated, truncated, info = env.step([STOP] * 3)
    assert terminated and not truncated and info["battle_won"] is True and reward > 0
    assert obs["alive"].tolist() == [1.0, 1.0, 1.0]


def test_invalid_action_modes(smax: SMAXBackend) -> None:
    strict, lenient = TeamEnv(smax), TeamEnv(smax, invalid_actions="replace")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="'ally_0': action 9 is not available"):
        strict.step([9, 4, 4])
    lenient.reset(seed=0)
    _, _, _, _, info = lenient.step([9, 4, 4])
    assert info["invalid_actions"] == 1
    with pytest.raises(ValueError, match="invalid_actions must be one of"):
        TeamEnv(smax, invalid_actions="ignore")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['map_name'\]"):
        TeamEnv(smax, map_name="3m")
    with pytest.raises(ValueError, match=r"missing \['ally_2'\]"):
        env = StarCraftMultiAgentEnv(smax)
        env.reset()
        env.step({"ally_0": 4, "ally_1": 4})


def test_registered_creators_and_config_errors() -> None:
    register_envs()
    assert set(ENV_NAMES) == {"smax", "smac", "pettingzoo", "smax_team", "smac_team", "pettingzoo_team"}
    env = env_creator("smax_team")({"map_name": "3s_vs_5z", "seed": 0})
    assert isinstance(env, TeamEnv) and env.backend.map_name == "3s_vs_5z"
    pz = env_creator("pettingzoo")({"map_name": "simple_spread"})
    assert isinstance(pz, StarCraftMultiAgentEnv) and pz.possible_agents == ["agent_0", "agent_1", "agent_2"]
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['difficulty'\] for the smax backend"):
        env_creator("smax")({"map_name": "3m", "difficulty": "7"})
    with pytest.raises(ValueError, match="no vectorized version"):
        env_creator("smax")({"map_name": "3m", "num_envs": 2})
    with pytest.raises(ValueError, match="always uses the 'smax' backend"):
        env_creator("smax_team")({"backend": "smac"})
    with pytest.raises(ValueError, match="unknown env 'sc2'"):
        env_creator("sc2")
    with pytest.raises(ValueError, match="unknown backend 'sc2'"):
        TeamEnv({"backend": "sc2"})
