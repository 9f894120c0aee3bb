"""A NaN batch skips the world-model, R_m and PPO steps: weights and optimizer state untouched, the skip counted."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from rllib_mag.learning import PPOConfig, WorldModelTrainer, make_optimizers, ppo_update
from rllib_mag.learning.gradient_step import gradient_step
from rllib_mag.models import WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor

D, A, N = 6, 4, 3


def _snapshot(modules, optimizers):
    return ([copy.deepcopy(m.state_dict()) for m in modules], [copy.deepcopy(o.state_dict()) for o in optimizers])


def _assert_same(before, after):
    for old, new in zip(before[0], after[0]):
        for key in old:
            assert torch.equal(old[key], new[key]), key
    for old, new in zip(before[1], after[1]):
        assert old["state"].keys() == new["state"].keys()
        for param_id, param_state in old["state"].items():
            for key, value in param_state.items():
                assert torch.equal(value, new["state"][param_id][key]), (param_id, key)


def _nan_batch(batch):
    bad = {k: v.clone() for k, v in batch.items()}
    bad["obs"][2, 1, 0, 0] = float("nan")
    return bad


@pytest.fixture
def trainer():
    torch.manual_seed(0)
    cfg = from_preset("small")
    trainer = WorldModelTrainer(WorldModel(cfg, D, A), ModelRewardPredictor(cfg))
    batch = random_sequence_batch(8, 3, N, D, A)
    trainer.world_model_step(batch)  # Adam has moments to protect
    trainer.model_reward_step(batch)
    return trainer, batch


def test_nonfinite_world_model_step_is_skipped_and_counted(trainer):
    trainer, batch = trainer
    nets, opts = [trainer.world_model], [trainer.model_opt]
    before = _snapshot(nets, opts)
    metrics = trainer.world_model_step(_nan_batch(batch))
    assert metrics["model_num_nonfinite_skipped"] == 1.0 and not torch.isfinite(torch.tensor(metrics["model_loss"]))
    _assert_same(before, _snapshot(nets, opts))
    assert all(p.grad is None for p in trainer.world_model.parameters())  # no NaN gradient left behind
    metrics = trainer.world_model_step(batch)  # a finite batch steps again
    assert metrics["model_num_nonfinite_skipped"] == 0.0
    after = trainer.world_model.state_dict()
    assert any(not torch.equal(value, after[key]) for key, value in before[0][0].items())


def test_nonfinite_model_reward_step_is_skipped_and_counted(trainer):
    trainer, batch = trainer
    nets, opts = [trainer.model_reward], [trainer.model_reward_opt]
    before = _snapshot(nets, opts)
    metrics = trainer.model_reward_step(_nan_batch(batch))
    assert metrics["model_reward_num_nonfinite_skipped"] == 1.0
    _assert_same(before, _snapshot(nets, opts))
    assert trainer.model_reward_step(batch)["model_reward_num_nonfinite_skipped"] == 0.0


def test_nonfinite_ppo_steps_are_skipped_and_counted(setup):
    _, actor, critic, batch = setup
    ppo = PPOConfig(ppo_epochs=2, ppo_minibatch_size=48)
    actor_opt, critic_opt = make_optimizers(actor, critic, ppo)
    ppo_update(actor, critic, actor_opt, critic_opt, batch, ppo)
    before = _snapshot([actor, critic], [actor_opt, critic_opt])
    reward = batch.reward.clone()
    reward[0, 0] = float("nan")  # one NaN reward: the advantage normalisation, hence every actor loss, is NaN
    metrics = ppo_update(actor, critic, actor_opt, critic_opt, replace(batch, reward=reward), ppo)
    n_minibatches = int(metrics["n_minibatches"])
    assert n_minibatches == 2 * -(-batch.actions.shape[:2].numel() // 48)
    assert metrics["num_nonfinite_skipped"] >= n_minibatches + 1  # every actor step, the critic's where G is NaN
    _assert_same((before[0][:1], before[1][:1]), _snapshot([actor], [actor_opt]))
    before = _snapshot([actor, critic], [actor_opt, critic_opt])
    metrics = ppo_update(actor, critic, actor_opt, critic_opt, replace(batch, reward=reward * float("nan")), ppo)
    assert metrics["num_nonfinite_skipped"] == 2 * n_minibatches  # all returns NaN: every actor and critic step
    _assert_same(before, _snapshot([actor, critic], [actor_opt, critic_opt]))
    assert ppo_update(actor, critic, actor_opt, critic_opt, batch, ppo)["num_nonfinite_skipped"] == 0.0


def test_gradient_step_skips_a_nonfinite_loss_even_with_finite_gradients():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    norm, stepped = gradient_step(weight.sum() + torch.tensor(float("inf")), [weight], optimizer, 1.0)
    assert not stepped and norm == pytest.approx(3 ** 0.5) and torch.equal(weight.detach(), torch.ones(3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_gradient_step_skips_nonfinite_loss_and_gradient(bad):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    norm, stepped = gradient_step((weight * torch.tensor([1.0, bad, 1.0])).sum(), [weight], optimizer, 1.0)
    assert not stepped and torch.equal(weight.detach(), torch.ones(3)) and weight.grad is None
    norm, stepped = gradient_step((weight * torch.tensor([3.0, 0.0, 4.0])).sum(), [weight], optimizer, 1.0)
    assert stepped and norm == pytest.approx(5.0)
    torch.testing.assert_close(weight.detach(), torch.tensor([1 - 0.1 * 0.6, 1.0, 1 - 0.1 * 0.8]))  # clipped to 1
    norm, stepped = gradient_step((weight * torch.tensor([3.0, 0.0, 4.0])).sum(), [weight], optimizer, None)
    assert stepped and norm == pytest.approx(5.0)
    torch.testing.assert_close(weight.detach(), torch.tensor([1 - 0.06 - 0.3, 1.0, 1 - 0.08 - 0.4]))  # unclipped
