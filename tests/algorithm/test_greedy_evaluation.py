"""Greedy evaluation as the learning-curve benchmark runs it: `Algorithm.evaluate()` on a separate env runner.

Its episodes must never enter D_e, it must not advance the training env-step counter, and it must act greedily
(the evaluation runner's `explore` is off: `forward_inference`, whose action is the argmax of the masked logits,
`tests/evaluation/test_evaluate.py`).
"""

import numpy as np
import pytest
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

from mag_tiny import tiny_config

EPISODES = 3


def lifetime_env_steps(algo) -> float:
    return algo.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)


def test_mag_greedy_evaluation_leaves_d_e_and_the_env_step_counter_alone(ray_local, curves):
    algo = tiny_config(num_model_rollout_actors=0).update_from_dict(curves.evaluation_config(EPISODES)).build_algo()
    try:
        assert set(algo.eval_env_runner_group.foreach_env_runner(lambda runner: runner.config.explore)) == {False}
        assert algo.env_runner.config.explore is True
        first = algo.train()
        d_e = algo.real_buffer.get_state()
        steps, updates = lifetime_env_steps(algo), algo.num_learner_updates
        assert steps == first["num_env_steps_sampled_lifetime"] > 0

        stats = curves.episode_stats(algo.evaluate()[ENV_RUNNER_RESULTS])
        again = curves.episode_stats(algo.evaluate()[ENV_RUNNER_RESULTS])
        for result in (stats, again):  # each call reports its own episodes, not a running mean
            assert result["episodes"] == EPISODES
            assert result["win_rate"] * EPISODES == pytest.approx(round(result["win_rate"] * EPISODES))
            assert np.isfinite(result["team_return"]) and result["episode_len"] >= 1

        assert lifetime_env_steps(algo) == steps and algo.num_learner_updates == updates
        after = algo.real_buffer.get_state()
        assert after["num_env_steps_added"] == d_e["num_env_steps_added"]
        for key, rows in d_e["rows"].items():
            assert np.array_equal(after["rows"][key], rows), key  # not one evaluation step stored
        second = algo.train()
        sampled = int(float(second[ENV_RUNNER_RESULTS]["num_env_steps_sampled"]))
        assert second["num_env_steps_sampled_lifetime"] == steps + sampled
    finally:
        algo.stop()


def test_ppo_greedy_evaluation_does_not_advance_the_env_step_counter(ray_local, curves):
    from rllib_mag import MaskedPPOConfig

    config = {**curves.PPO_CONFIG, "train_batch_size_per_learner": 200, "minibatch_size": 100, "num_epochs": 1,
              "env_config": {"map_name": "3s_vs_3z", "invalid_actions": "replace"},
              **curves.evaluation_config(EPISODES)}
    algo = MaskedPPOConfig().environment("smax").update_from_dict(config).debugging(seed=0).build_algo()
    try:
        assert set(algo.eval_env_runner_group.foreach_env_runner(lambda runner: runner.config.explore)) == {False}
        algo.train()
        steps = lifetime_env_steps(algo)
        stats = curves.episode_stats(algo.evaluate()[ENV_RUNNER_RESULTS])
        assert stats["episodes"] == EPISODES and np.isfinite(stats["team_return"])
        assert lifetime_env_steps(algo) == steps
    finally:
        algo.stop()
