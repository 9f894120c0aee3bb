"""`rllib evaluate` pieces: the Wilson interval, checkpoint errors, and greedy acting (the CLI end to end is in
`tests/algorithm/test_mag_training.py`, on a trained checkpoint)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rllib_mag.algorithm.rl_module import MAGTorchRLModule
from rllib_mag.envs import env_creator
from rllib_mag.evaluation import (MODULE_DIR, CheckpointError, EvaluationResult, TrainedPolicy, evaluate,
                                  load_policy, wilson_interval)
from rllib_mag.models.world_model import RSSMState

SETTINGS = {"name": "small", "hidden": 32, "embed": 32, "deter": 32, "n_categoricals": 4, "n_classes": 4,
            "attn_ff": 32, "head_hidden": 32}


@pytest.fixture
def env():
    env = env_creator("smax_team")({"map_name": "3s_vs_3z"})
    yield env
    env.close()


@pytest.fixture
def module(env):
    torch.manual_seed(0)
    module = MAGTorchRLModule(observation_space=env.observation_space, action_space=env.action_space,
                              inference_only=True, model_config={"world_model": SETTINGS})
    return module.eval()


def test_wilson_interval_matches_the_closed_form():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(32, 32)[1] == 1.0 and wilson_interval(32, 32)[0] == pytest.approx(0.8928, abs=1e-4)
    result = EvaluationResult(returns=[1.0, 3.0], wins=[True, False], lengths=[10, 20])
    assert result.win_rate == 0.5
    assert result.report() == ("2 greedy episodes: win rate 0.50 (95% CI 0.09-0.91), return 2.00 +- 1.00, "
                               "length 15.0 steps")


def test_greedy_action_is_the_argmax_of_the_masked_logits(module, env):
    obs, _ = env.reset(seed=0)
    state = module.get_initial_state()
    batch = {Columns.OBS: {k: torch.as_tensor(v, dtype=torch.float32)[None, None] for k, v in obs.items()},
             Columns.STATE_IN: {k: v[None] for k, v in state.items()}}
    with torch.no_grad():  # the same latent draw in both: the filter samples z from torch's RNG
        torch.manual_seed(1)
        out = module.forward_inference(batch)
        torch.manual_seed(1)
        posterior = module.world_model.observe_step(RSSMState(state["stoch"][None], state["deter"][None]),
                                                    state["prev_action"][None], batch[Columns.OBS]["obs"][:, 0],
                                                    torch.zeros(1))
        logits = module.actor.masked_logits(posterior.features(), batch[Columns.OBS]["action_mask"][:, 0])
    actions = out[Columns.ACTIONS][0, 0]
    assert torch.equal(actions, logits[0].argmax(-1))
    assert all(obs["action_mask"][agent, action] == 1 for agent, action in enumerate(actions.tolist()))


def test_evaluation_is_deterministic_per_seed_and_seeds_differ(module):
    policy = TrainedPolicy(module, "smax_team", {"map_name": "3s_vs_3z"})
    first, again = evaluate(policy, 3, seed=0), evaluate(policy, 3, seed=0)
    assert first.returns == again.returns and first.lengths == again.lengths
    assert len(first.returns) == 3 and all(length >= 1 for length in first.lengths)
    assert evaluate(policy, 3, seed=100).returns != first.returns
    with pytest.raises(ValueError, match="episodes=0 is invalid"):
        evaluate(policy, 0)
    short = evaluate(TrainedPolicy(module, "smax_team", {"map_name": "3s_vs_3z", "episode_limit": 4}), 2)
    assert short.lengths == [4, 4] and short.wins == [False, False]  # truncated at the limit ends the episode


def test_bad_checkpoints_are_named(tmp_path, module):
    with pytest.raises(CheckpointError, match="is not an algorithm checkpoint"):
        load_policy(tmp_path)
    (tmp_path / "class_and_ctor_args.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"class_and_ctor_args.pkl is unreadable \(EOFError"):
        load_policy(tmp_path)
    (tmp_path / "class_and_ctor_args.pkl").write_bytes(pickle.dumps(
        {"class": None, "ctor_args_and_kwargs": (({"env": "smax", "env_config": {}},), {})}))
    with pytest.raises(CheckpointError, match="has no learner_group"):
        load_policy(tmp_path)
    module.save_to_path(str(tmp_path / MODULE_DIR))
    with pytest.raises(CheckpointError, match="trained on env 'smax': rllib evaluate plays team-view envs"):
        load_policy(tmp_path)
    (tmp_path / "class_and_ctor_args.pkl").write_bytes(pickle.dumps(
        {"class": None, "ctor_args_and_kwargs": (({"env": "smax_team", "env_config": {"map_name": "3s_vs_3z"}},),
                                                 {})}))
    state_file = tmp_path / MODULE_DIR / "module_state.pkl"
    state = state_file.read_bytes()
    state_file.write_bytes(state[:100])
    with pytest.raises(CheckpointError, match="default_policy is unreadable .* the checkpoint is truncated"):
        load_policy(tmp_path)
    state_file.write_bytes(state)
    policy = load_policy(tmp_path)
    assert (policy.env, policy.env_config) == ("smax_team", {"map_name": "3s_vs_3z"})
    for name, value in module.state_dict().items():
        assert torch.equal(policy.module.state_dict()[name], value)
    assert np.isfinite(evaluate(policy, 1).returns[0])
