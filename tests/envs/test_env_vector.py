"""Vectorized SMAX team env: equals N single envs (incl. NEXT_STEP auto-reset) and plugs into RLlib."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_mag.envs.smax import SMAXBackend
from rllib_mag.envs.smax_vector import SMAXTeamVectorEnv
from rllib_mag.envs.team import TeamEnv

N_ENVS = 2  # every vector test uses the same batch size: one vmapped compilation


@pytest.fixture(scope="module")
def vec_env() -> SMAXTeamVectorEnv:
    return SMAXTeamVectorEnv(N_ENVS, "3s_vs_5z", seed=10)


def test_spaces_match_single_env(vec_env: SMAXTeamVectorEnv, smax: SMAXBackend) -> None:
    single = TeamEnv(smax)
    assert vec_env.single_observation_space == single.observation_space
    assert vec_env.single_action_space == single.action_space
    obs, infos = vec_env.reset(seed=10)
    assert infos == {} and vec_env.observation_space.contains(obs)
    assert {k: v.shape for k, v in obs.items()} == {"obs": (2, 3, 101), "state": (2, 96), "action_mask": (2, 3, 10), "alive": (2, 3)}


def test_equals_single_envs_including_autoreset(vec_env: SMAXTeamVectorEnv) -> None:
    singles = [TeamEnv(SMAXBackend("3s_vs_5z")) for _ in range(N_ENVS)]
    obs, _ = vec_env.reset(seed=10)
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(0)
    finished = np.zeros(N_ENVS, bool)
    resets = np.zeros(N_ENVS, int)
    for _ in range(120):  # random episodes last ~45 steps: every copy auto-resets
        actions = np.array([[rng.choice(np.flatnonzero(m)) for m in mask] for mask in obs["action_mask"]])
        obs, rewards, terms, truncs, infos = vec_env.step(actions)
        for i, env in enumerate(singles):
            if finished[i]:  # NEXT_STEP: this step reset copy i and ignored its actions
                assert rewards[i] == 0.0 and not terms[i] and not truncs[i]
                single_obs[i] = env.reset()[0]
                finished[i] = False
                resets[i] += 1
            else:
                single_obs[i], reward, term, trunc, info = env.step(actions[i])
                assert rewards[i] == pytest.approx(reward, abs=1e-5) and (terms[i], truncs[i]) == (term, trunc)
                if term or trunc:
                    finished[i] = True
                    assert infos["_battle_won"][i] and infos["battle_won"][i] == info["battle_won"]
            for key in obs:  # terminal obs on the done step, first obs of the new episode after it
                np.testing.assert_allclose(obs[key][i], single_obs[i][key], atol=1e-5)
    assert resets.min() >= 1
    assert vec_env.core.vstep_autoreset._cache_size() == 1


def test_bad_actions_and_close() -> None:
    env = SMAXTeamVectorEnv(N_ENVS, "3s_vs_5z", seed=0)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.full((N_ENVS, 3), 4))
    env.reset()
    with pytest.raises(ValueError, match=r"expected actions of shape \(2, 3\)"):
        env.step(np.full((N_ENVS, 2), 4))
    with pytest.raises(ValueError, match=r"sub-env 1: agent 'ally_2': action 9 is not available"):
        env.step(np.array([[4, 4, 4], [4, 4, 9]]))
    env.close()
    with pytest.raises(RuntimeError, match="after close"):
        env.reset()


def test_rllib_env_runners_sample() -> None:
    """SingleAgentEnvRunner with vector_entry_point uses our vector env; MultiAgentEnvRunner the per-agent env."""
    import rllib_mag.envs
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    rllib_mag.envs.register_envs()
    env_config = {"map_name": "3s_vs_5z", "invalid_actions": "replace"}  # random_actions ignore masks
    config = (
        PPOConfig()
        .environment("smax_team", env_config=env_config)
        .env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=N_ENVS,
            gym_env_vectorize_mode="vector_entry_point",
            env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations(),
        )
    )
    runner = SingleAgentEnvRunner(config=config)
    assert isinstance(runner.env.unwrapped, SMAXTeamVectorEnv)
    episodes = runner.sample(num_timesteps=200, random_actions=True)
    done = [e for e in episodes if e.is_done]
    assert done and "battle_won" in done[0].get_infos(-1)
    assert sum(len(e) for e in episodes) >= 200

    ma_config = (
        PPOConfig()
        .environment("smax", env_config=env_config)
        .multi_agent(policies={"shared"}, policy_mapping_fn=rllib_mag.envs.shared_policy_mapping)
        .env_runners(num_env_runners=0, env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations(multi_agent=True))
    )
    ma_runner = MultiAgentEnvRunner(config=ma_config)
    episodes = ma_runner.sample(num_timesteps=100, random_actions=True)
    assert sum(e.env_steps() for e in episodes) >= 100
