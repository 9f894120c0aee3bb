"""TD(lambda), PPO and world-model trainer tests (torch core, no Ray)."""

from __future__ import annotations

import math
from dataclasses import replace
import pytest
import torch

from rllib_mag.learning import PPOConfig, WorldModelTrainer, lambda_returns, make_optimizers, ppo_update
from rllib_mag.learning.ppo import clipped_surrogate_loss
from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, imagine

D, A, N = 6, 4, 3


def test_lambda_returns_hand_computed():
    gamma, lam = 0.9, 0.5
    reward, discount = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.5]])
    values = torch.tensor([[[0.5], [1.0], [4.0]]])
    g1 = 2.0 + gamma * 0.5 * 4.0  # G_1 = r_1 + gamma d_1 V_2 (bootstrap G_2 = V_2)
    g0 = 1.0 + gamma * 1.0 * ((1 - lam) * 1.0 + lam * g1)
    out = lambda_returns(reward, discount, values, gamma, lam)
    torch.testing.assert_close(out, torch.tensor([[[g0], [g1]]]))
    with pytest.raises(ValueError, match=r"^values need k\+1=3 steps, got 2$"):
        lambda_returns(reward, discount, values[:, :2], gamma, lam)


def test_clipped_surrogate_stops_gradient_outside_clip_range():
    adv = torch.tensor([1.0, 1.0, -1.0])
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 1.1, 0.5])).requires_grad_()
    loss, ratio = clipped_surrogate_loss(logp, old, adv, clip=0.2)
    loss.backward()
    torch.testing.assert_close(ratio.detach(), torch.tensor([1.5, 1.1, 0.5]))
    assert logp.grad[0] == 0 and logp.grad[2] == 0 and logp.grad[1] != 0


def _objectives(actor, critic, batch, cfg):
    with torch.no_grad():
        returns = lambda_returns(batch.reward, batch.discount, batch.values, cfg.gamma, cfg.lambda_)
        adv = returns - batch.values[:, :-1]
        adv = (adv - adv.mean()) / (adv.std() + 1e-4)
        logp = actor(batch.features, batch.action_mask).log_prob(batch.actions)
        surrogate = clipped_surrogate_loss(logp, batch.logp, adv, cfg.clip_param)[0]
        return surrogate.item(), 0.5 * (returns - critic(batch.features)).pow(2).mean().item()


def test_ppo_improves_objectives_on_fixed_batch(setup):
    _, actor, critic, batch = setup
    cfg = PPOConfig(ppo_minibatch_size=40, ppo_epochs=5)
    actor_opt, critic_opt = make_optimizers(actor, critic, cfg)
    before = _objectives(actor, critic, batch, cfg)
    metrics = ppo_update(actor, critic, actor_opt, critic_opt, batch, cfg, torch.Generator().manual_seed(0))
    after = _objectives(actor, critic, batch, cfg)
    assert after[0] < before[0] and after[1] < before[1], (before, after)
    n_mb = 5 * -(-batch.features.shape[0] * batch.features.shape[1] // 40)
    assert metrics["n_minibatches"] == n_mb
    assert metrics["entropy_coeff"] == pytest.approx(1e-3 * 0.99998 ** n_mb)
    assert all(isinstance(v, float) and v == v for v in metrics.values())
    assert 0.0 <= metrics["clip_fraction"] <= 1.0


def test_ppo_critic_regresses_on_td_lambda_returns_with_gamma_and_lambda(setup):
    """One minibatch of the whole batch: the reported critic loss is `0.5 (G^lambda - V)^2` of the critic before its
    step, with G^lambda from the config's gamma and lambda_ (distinct values, so a swap shows)."""
    _, actor, critic, batch = setup
    cfg = PPOConfig(ppo_minibatch_size=batch.features.shape[0] * batch.features.shape[1], ppo_epochs=1, gamma=0.9,
                    lambda_=0.5)
    with torch.no_grad():
        returns = lambda_returns(batch.reward, batch.discount, batch.values, 0.9, 0.5)
        expected = 0.5 * (returns - critic(batch.features)).pow(2).mean().item()
    actor_opt, critic_opt = make_optimizers(actor, critic, cfg)
    metrics = ppo_update(actor, critic, actor_opt, critic_opt, batch, cfg, torch.Generator().manual_seed(0))
    assert metrics["n_minibatches"] == 1.0
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5)


def test_ppo_config_errors():
    for bad in (dict(ppo_epochs=0), dict(ppo_minibatch_size=0), dict(clip_param=0.0), dict(gamma=1.5),
                dict(entropy_coeff=-1.0)):
        with pytest.raises(ValueError):
            PPOConfig(**bad)


def test_world_model_trainer_steps():
    torch.manual_seed(0)
    cfg = from_preset("small")
    wm, rm = WorldModel(cfg, D, A), ModelRewardPredictor(cfg)
    trainer = WorldModelTrainer(wm, rm)
    data = random_sequence_batch(8, 4, N, D, A, structured=True)
    first = trainer.world_model_step(data)
    assert {"model_loss", "model_grad_norm", "model_kl", "model_mi"} <= set(first)
    for _ in range(20):
        last = trainer.world_model_step(data)
    assert last["model_loss"] < first["model_loss"]
    rm_losses = [trainer.model_reward_step(data)["model_reward_loss"] for _ in range(30)]
    assert rm_losses[-1] < rm_losses[0] and wm.training


def test_bfloat16_rollouts_start_ppo_on_policy_once_log_probs_are_recomputed():
    """bf16 planning: the stored log-probs are the bf16 actor's, off the float32 learner's; `behaviour_log_probs`
    puts PPO's first ratio back at 1."""
    import copy
    import dataclasses

    from rllib_mag.learning.ppo import behaviour_log_probs

    torch.manual_seed(0)
    cfg = from_preset("small")
    nets = [WorldModel(cfg, D, A), Actor(cfg, A), AttentionCritic(cfg), ModelRewardPredictor(cfg)]
    with torch.no_grad():
        start = nets[0].loss(random_sequence_batch(6, 4, N, D, A)).posterior.map(lambda x: x.flatten(0, 1))
    half = [copy.deepcopy(net).to(torch.bfloat16) for net in nets]
    batch = imagine(*half, start, PlanningConfig(rollout_length_k=5, planning_horizon_H=2, planning_candidates_L=2),
                    torch.Generator().manual_seed(0))
    actor, critic = nets[1], nets[2]
    ppo = PPOConfig(ppo_minibatch_size=40, ppo_epochs=1)

    def first_ratio_deviation(data):
        learner_actor, learner_critic = copy.deepcopy(actor), copy.deepcopy(critic)
        opts = make_optimizers(learner_actor, learner_critic, ppo)
        return ppo_update(learner_actor, learner_critic, *opts, data, ppo,
                          torch.Generator().manual_seed(0))["initial_ratio_deviation"]

    assert first_ratio_deviation(batch) > 1e-4
    recomputed = dataclasses.replace(batch, logp=behaviour_log_probs(actor, batch))
    assert first_ratio_deviation(recomputed) < 1e-6


def test_bfloat16_autocast_world_model_step_matches_float32_loss():
    """`world_model_dtype: bfloat16`: on one fixed batch and weights, every loss term under bf16 autocast is within
    a few percent of float32, the step stays finite and the weights stay float32."""
    torch.manual_seed(0)
    cfg = from_preset("small")
    batch = random_sequence_batch(10, 8, 3, 12, 5, seed=3)
    losses = {}
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        torch.manual_seed(1)  # same weights and dropout masks
        trainer = WorldModelTrainer(WorldModel(cfg, 12, 5), ModelRewardPredictor(cfg), autocast_dtype=dtype)
        losses[name] = trainer.world_model_step(batch)
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.world_model.parameters())
    full, half = losses["float32"], losses["bfloat16"]
    assert full.keys() == half.keys()
    for key in ("model_loss", "model_reconstruction", "model_reward", "model_continue", "model_av_action",
                "model_mi", "model_kl"):
        assert half[key] == pytest.approx(full[key], rel=0.03, abs=1e-3), key
    assert half["model_loss"] != full["model_loss"]  # autocast did run in bf16


def test_ppo_losses_equal_categorical_and_are_uniform_where_all_actions_are_masked(setup):
    """The written-out PPO losses give `torch.distributions.Categorical`'s log-probs and entropy, except where the
    sampled mask is all zero: there the policy is uniform (`-log A`, as imagination stores it; Categorical says 0)."""
    from rllib_mag.learning.ppo import actor_objective

    _, actor, _, batch = setup
    flat = batch.as_flat()
    _, entropy, _, logp = actor_objective(actor, flat["features"], flat["action_mask"], flat["actions"],
                                          flat["logp"], torch.ones_like(flat["logp"]), 0.2)
    dist = actor(flat["features"], flat["action_mask"])
    some = flat["action_mask"].sum(-1) > 0
    torch.testing.assert_close(logp[some], dist.log_prob(flat["actions"])[some])
    assert (~some).any() and torch.allclose(logp[~some], torch.tensor(-math.log(A)))  # all masked: uniform
    expected_entropy = torch.where(some, dist.entropy(), torch.tensor(math.log(A)))
    torch.testing.assert_close(entropy, expected_entropy.mean())


def test_clipped_surrogate_loss_value_is_the_ppo_clip_objective():
    logp, old = torch.log(torch.tensor([1.5, 1.1, 0.5, 0.7])), torch.zeros(4)
    adv = torch.tensor([2.0, -1.0, -3.0, 1.0])
    # rho = 1.5, 1.1, 0.5, 0.7; clip 0.2: min(rho A, clip(rho) A) = 2.4, -1.1, -2.4, 0.7
    loss, ratio = clipped_surrogate_loss(logp, old, adv, clip=0.2)
    assert loss.item() == pytest.approx(-(2.4 - 1.1 - 2.4 + 0.7) / 4)


def _reference_ppo(actor, critic, batch, cfg, seed):
    """PPO as the paper's lines 16-18 and the released code write it, in plain torch, for `ppo_update` to equal:
    GAE-style lambda returns, A = G - V normalised (unbiased std + 1e-4), per minibatch an actor step on
    -min(rho A, clip(rho) A) - c H and a critic step on 0.5 (G - V)^2, each clipped to global norm."""
    actor_opt, critic_opt = make_optimizers(actor, critic, cfg)
    with torch.no_grad():
        returns = torch.zeros_like(batch.values[:, :-1])
        next_return = batch.values[:, -1]
        for t in reversed(range(batch.reward.shape[1])):
            next_return = batch.reward[:, t, None] + cfg.gamma * batch.discount[:, t, None] * (
                (1 - cfg.lambda_) * batch.values[:, t + 1] + cfg.lambda_ * next_return)
            returns[:, t] = next_return
        adv = returns - batch.values[:, :-1]
        adv = (adv - adv.mean()) / (adv.std() + 1e-4)
    flat = {"features": batch.features.flatten(0, 1), "mask": batch.action_mask.flatten(0, 1),
            "actions": batch.actions.flatten(0, 1), "logp": batch.logp.flatten(0, 1),
            "returns": returns.flatten(0, 1), "adv": adv.flatten(0, 1)}
    coef, sums, generator = cfg.entropy_coeff, [], torch.Generator().manual_seed(seed)
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(len(flat["features"]), generator=generator).split(cfg.ppo_minibatch_size):
            mb = {k: v[idx] for k, v in flat.items()}
            log_probs = torch.log_softmax(actor.net(mb["features"]).masked_fill(mb["mask"] == 0, -1e10), -1)
            logp = log_probs.gather(-1, mb["actions"][..., None]).squeeze(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
            rho = torch.exp(logp - mb["logp"])
            surrogate = -torch.min(rho * mb["adv"], rho.clamp(1 - cfg.clip_param, 1 + cfg.clip_param) * mb["adv"])
            actor_loss = surrogate.mean()
            actor_opt.zero_grad()
            (actor_loss - coef * entropy).backward()
            torch.nn.utils.clip_grad_norm_(actor.parameters(), cfg.policy_grad_clip)
            actor_opt.step()
            critic_loss = 0.5 * ((mb["returns"] - critic(mb["features"])) ** 2).mean()
            critic_opt.zero_grad()
            critic_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.policy_grad_clip)
            critic_opt.step()
            coef *= cfg.entropy_annealing
            sums.append([actor_loss.item(), critic_loss.item(), entropy.item(),
                         ((rho - 1).abs() > cfg.clip_param).float().mean().item(),
                         ((rho - 1) - (logp - mb["logp"])).mean().item()])
    means = torch.tensor(sums).mean(0).tolist()
    return dict(zip(("actor_loss", "critic_loss", "entropy", "clip_fraction", "approx_kl"), means)), coef


def test_ppo_update_equals_a_reference_implementation(setup):
    import copy

    _, actor, critic, batch = setup
    cfg = PPOConfig(ppo_epochs=2, ppo_minibatch_size=50, entropy_coeff=0.05, entropy_annealing=0.5,
                    policy_grad_clip=0.02, clip_param=0.1, gamma=0.9, lambda_=0.8)  # both nets' norms clipped
    old_logp = batch.logp + 0.3 * torch.randn(batch.logp.shape, generator=torch.Generator().manual_seed(0))
    batch = replace(batch, logp=old_logp)  # off-policy, so that some ratios are clipped
    ref_actor, ref_critic = copy.deepcopy(actor), copy.deepcopy(critic)
    expected, expected_coef = _reference_ppo(ref_actor, ref_critic, batch, cfg, seed=7)
    actor, critic = copy.deepcopy(actor), copy.deepcopy(critic)
    actor_opt, critic_opt = make_optimizers(actor, critic, cfg)
    metrics = ppo_update(actor, critic, actor_opt, critic_opt, batch, cfg, torch.Generator().manual_seed(7))
    assert metrics["n_minibatches"] == 2 * 3 and metrics["entropy_coeff"] == pytest.approx(expected_coef)
    # the learner passes the annealed coefficient of its previous call on
    again = ppo_update(copy.deepcopy(actor), copy.deepcopy(critic), actor_opt, critic_opt, batch, cfg,
                       entropy_coeff=0.2)
    assert again["entropy_coeff"] == pytest.approx(0.2 * 0.5 ** 6)
    assert 0 < expected["clip_fraction"] < 1
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for net, ref in ((actor, ref_actor), (critic, ref_critic)):
        for p, q in zip(net.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_world_model_step_is_one_float32_adam_step_on_the_loss_with_clipped_gradients():
    """`world_model_step` equals: the float32 loss (no autocast by default), backward, global-norm clip at
    `model_grad_clip`, Adam at `world_model_lr`; R_m's optimizer has `model_reward_lr`."""
    import copy

    torch.manual_seed(0)
    cfg = from_preset("small", world_model_lr=3e-3, model_reward_lr=2e-3, model_grad_clip=0.5)
    wm = WorldModel(cfg, D, A)
    data = random_sequence_batch(8, 4, N, D, A, structured=True)
    reference = copy.deepcopy(wm)
    optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)
    torch.manual_seed(1)  # the same dropout masks on both sides
    loss = reference.loss(data).total
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    optimizer.step()
    trainer = WorldModelTrainer(wm, ModelRewardPredictor(cfg))
    torch.manual_seed(1)
    metrics = trainer.world_model_step(data)
    assert metrics["model_loss"] == loss.item() and metrics["model_grad_norm"] == pytest.approx(norm.item())
    assert norm.item() > 0.5  # the clip acted
    for p, q in zip(wm.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
    assert trainer.model_reward_opt.param_groups[0]["lr"] == 2e-3
    assert set(trainer.model_reward_step(data)) == {"model_reward_loss", "model_reward_label_mean",
                                                    "model_reward_num_nonfinite_skipped"}


def test_policy_optimizers_have_the_configured_rates_and_weight_decay():
    cfg = PPOConfig(actor_lr=3e-4, critic_lr=2e-3, actor_weight_decay=0.1)  # neither is Adam's default
    model_cfg = from_preset("small")
    actor_opt, critic_opt = make_optimizers(Actor(model_cfg, A), AttentionCritic(model_cfg), cfg)
    assert (actor_opt.param_groups[0]["lr"], actor_opt.param_groups[0]["weight_decay"]) == (3e-4, 0.1)
    assert (critic_opt.param_groups[0]["lr"], critic_opt.param_groups[0]["weight_decay"]) == (2e-3, 0)


@pytest.mark.parametrize("bad, message", [
    (dict(ppo_epochs=0), r"^ppo_epochs=0 is invalid: must be an int >= 1$"),
    (dict(actor_lr=0.0), r"^actor_lr=0.0 is invalid: must be > 0$"),
    (dict(lambda_=1.5), r"^lambda_=1.5 is invalid: must be in \(0, 1\]$"),
    (dict(entropy_coeff=-1.0), r"^entropy_coeff=-1.0 is invalid: must be >= 0$"),
    (dict(normalize_advantages=1), r"^normalize_advantages=1 is invalid: must be true or false$"),
])
def test_ppo_config_errors_name_the_setting(bad, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**bad)
