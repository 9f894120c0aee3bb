"""R_m and planner tests (torch core, no Ray)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from rllib_mag.models import Actor, AttentionCritic, RSSMState, WorldModel, from_preset
from rllib_mag.models.layers import categorical_from_uniform, eval_mode, one_hot, softmax_weights
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.learning.world_model_trainer import train_model_reward_step
from rllib_mag.planning import (PAPER_TERMS, REFERENCE_TERMS, ModelRewardPredictor, PlanningConfig, imagine,
                                model_error_labels)
from rllib_mag.models.actor_critic import MASKED_LOGIT
from rllib_mag.planning.imagination import (ActionNoise, StepNoise, act, candidate_scores, draw_action,
                                            imagination_steps, lookahead_heads, plan_step, planning_mode,
                                            select_candidates)

D, A, N, M = 6, 4, 3, 10


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    cfg = from_preset("small", n_categoricals=6)  # 6 categoricals of 8 classes: a swapped latent axis shows
    return WorldModel(cfg, D, A), Actor(cfg, A), AttentionCritic(cfg), ModelRewardPredictor(cfg)


@pytest.fixture(scope="module")
def start(nets):
    wm = nets[0]
    with torch.no_grad():
        out = wm.loss(random_sequence_batch(5, 2, N, D, A))
    return out.posterior.map(lambda x: x.flatten(0, 1))  # M = 10 start states


def run(nets, start, cfg, seed=0):
    return imagine(*nets, start, cfg, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------- R_m
def test_labels_terms_and_reconstruction_scale(nets):
    out = nets[0].loss(random_sequence_batch(6, 2, N, D, A))
    label = model_error_labels(out, PAPER_TERMS)
    assert label.shape == (6, 2, N) and not label.requires_grad
    expected = out.per_step["kl"] + out.per_step["reconstruction"] / D + out.per_step["reward"]
    torch.testing.assert_close(label, expected.detach())
    summed = model_error_labels(out, ("reconstruction",), reconstruction_reduction="sum")
    torch.testing.assert_close(summed, out.per_step["reconstruction"].detach())
    full = model_error_labels(out, REFERENCE_TERMS)
    assert (full >= label - 1e-6).all()
    for bad in ((), ("kl", "nope")):
        with pytest.raises(ValueError):
            model_error_labels(out, bad)


def test_model_reward_ranks_high_error_states(nets):
    """Constructed case: states whose first categorical takes class 0 have error 2.0, the others 0.1."""
    cfg = nets[0].cfg
    torch.manual_seed(1)
    rm = ModelRewardPredictor(cfg)
    opt = torch.optim.Adam(rm.parameters(), lr=3e-3)
    T, B = 8, 16
    cls = torch.randint(0, cfg.n_classes, (T, B, N, cfg.n_categoricals))
    features = RSSMState(F.one_hot(cls, cfg.n_classes).float(), torch.randn(T, B, N, cfg.deter)).features()
    high = cls[..., 0] == 0
    error = torch.where(high, 2.0, 0.1)
    for _ in range(300):
        train_model_reward_step(rm, opt, features, error)
    with torch.no_grad():
        pred = rm(features)
    assert pred[high].min() > pred[~high].max()


# ----------------------------------------------------------------------------------- planner
def test_synthetic_batch_shapes_and_no_grad(nets, start):
    k = 5
    cfg = PlanningConfig(rollout_length_k=k, planning_horizon_H=3, planning_candidates_L=3)
    for net in nets:
        net.train()
        net.zero_grad(set_to_none=True)
    batch = run(nets, start, cfg)
    F_ = nets[0].cfg.feature_dim
    shapes = dict(features=(M, k, N, F_), actions=(M, k, N), logp=(M, k, N), logits=(M, k, N, A),
                  action_mask=(M, k, N, A), reward=(M, k), discount=(M, k), values=(M, k + 1, N), chosen_error=(k,),
                  mean_candidate_error=(k,), step_error=(k,), accumulated_error=(k,))
    for name, shape in shapes.items():
        value = getattr(batch, name)
        assert value.shape == shape, name
        assert not value.requires_grad and value.grad_fn is None and not value.is_inference(), name
    assert all(net.training for net in nets)  # modes restored
    assert all(p.grad is None for net in nets for p in net.parameters())
    assert ((batch.discount >= 0) & (batch.discount <= 1)).all()
    assert (batch.chosen_error <= batch.mean_candidate_error + 1e-6).all()
    torch.testing.assert_close(batch.accumulated_error, batch.step_error.cumsum(0))
    some_available = batch.action_mask.sum(-1) > 0  # an all-zero sampled mask leaves a uniform policy (reference)
    assert (batch.action_mask.gather(-1, batch.actions[..., None])[..., 0][some_available] == 1).all()
    torch.testing.assert_close(batch.logp, batch.logits.log_softmax(-1).gather(-1, batch.actions[..., None])[..., 0])
    flat = batch.as_flat()
    assert flat["features"].shape == (M * k, N, F_) and batch.to("cpu").values.shape == (M, k + 1, N)


def _one_plan_step(nets, start, cfg, seed=0):
    wm, actor, _, rm = nets
    g = torch.Generator().manual_seed(seed)
    with eval_mode(*nets), torch.inference_mode():
        noise = StepNoise.draw(wm, start, cfg, g)
        action = act(wm, actor, start.features(), cfg, noise.action)[0]
        return plan_step(wm, actor, rm, start, F.one_hot(action, A).float(), cfg, noise)


def test_choice_equals_brute_force_per_start_argmin(nets, start):
    step = _one_plan_step(nets, start, PlanningConfig(planning_horizon_H=4, planning_candidates_L=5))
    L = step.candidates.shape[0]
    assert step.scores.shape == (L, M)
    for m in range(M):
        best = min(range(L), key=lambda j: step.scores[j, m].item())
        assert step.choice[m].item() == best
        assert torch.equal(step.next_state.stoch[m], step.candidates[best, m])


def test_horizon_one_scores_are_per_candidate_model_error(nets, start):
    step = _one_plan_step(nets, start, PlanningConfig(planning_horizon_H=1, planning_candidates_L=4))
    rm = nets[3]
    with torch.no_grad():
        for j in range(4):
            cand = RSSMState(step.candidates[j], step.next_state.deter)
            torch.testing.assert_close(step.scores[j], rm(cand.features()).mean(-1))


def test_global_selection_is_single_argmin(nets, start):
    scores = torch.rand(4, M)
    choice = select_candidates(scores, "global")
    assert (choice == scores.mean(1).argmin()).all()
    plan = PlanningConfig(planning_horizon_H=3, planning_candidates_L=4, planning_selection="global")
    step = _one_plan_step(nets, start, plan)
    assert (step.choice == step.scores.mean(1).argmin()).all()


def test_single_candidate_equals_mamba_rollout(nets, start):
    k = 4
    a = run(nets, start, PlanningConfig(rollout_length_k=k, planning_horizon_H=2, planning_candidates_L=1), seed=3)
    b = run(nets, start, PlanningConfig(rollout_length_k=k, planning_horizon_H=2, mode="mamba"), seed=3)
    for f in dataclasses.fields(a):
        torch.testing.assert_close(getattr(a, f.name), getattr(b, f.name), equal_nan=True)
    assert torch.isnan(a.chosen_error).all() and torch.isfinite(a.accumulated_error).all()
    # hand-written MAMBA imagination: act, transition, one prior sample, with the same uniforms
    wm, actor = nets[0], nets[1]
    g = torch.Generator().manual_seed(3)
    state, feats = start, []
    with eval_mode(*nets), torch.inference_mode():
        for _ in range(k):
            noise = StepNoise.draw(wm, state, PlanningConfig(mode="mamba"), g)
            action = act(wm, actor, state.features(), PlanningConfig(), noise.action)[0]
            deter = wm.transition(state, F.one_hot(action, A).float())
            index = categorical_from_uniform(softmax_weights(wm.prior_logits(deter)), noise.candidates[0])
            state = RSSMState(one_hot(index, wm.cfg.n_classes, deter.dtype), deter)
            feats.append(state.features())
    torch.testing.assert_close(a.features[:, 1:], torch.stack(feats[:-1], 1))


def test_seeded_determinism(nets, start):
    cfg = PlanningConfig(rollout_length_k=3, planning_horizon_H=2, planning_candidates_L=3)
    a, b, c = run(nets, start, cfg, 5), run(nets, start, cfg, 5), run(nets, start, cfg, 6)
    for f in dataclasses.fields(a):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
    assert not torch.equal(a.features, c.features)


def test_bfloat16_networks_give_float32_batches_close_to_float32(nets, start):
    """`planning_dtype: bfloat16`: the networks compute in bf16, the synthetic batch stays float32."""
    import copy

    cfg = PlanningConfig(rollout_length_k=3, planning_horizon_H=2, planning_candidates_L=3)
    full = run(nets, start, cfg, 5)
    half = run([copy.deepcopy(net).to(torch.bfloat16) for net in nets], start, cfg, 5)
    for f in dataclasses.fields(half):
        assert getattr(half, f.name).dtype == getattr(full, f.name).dtype, f.name
    assert torch.isfinite(half.values).all() and torch.isfinite(half.chosen_error).all()
    # The first step's inputs are identical, so its values differ only by bf16 rounding.
    assert torch.allclose(half.values[:, 0], full.values[:, 0], atol=0.05, rtol=0.05)
    # the stored log-probs are those of the stored (allowed) actions under the stored logits
    actions = half.actions[..., None]
    some_allowed = half.action_mask.sum(-1) > 0  # a sampled mask may allow nothing (then any action is kept)
    assert (half.action_mask.gather(-1, actions).squeeze(-1)[some_allowed] == 1).all()
    torch.testing.assert_close(half.logp, half.logits.log_softmax(-1).gather(-1, actions).squeeze(-1))


@pytest.mark.parametrize("bad", [dict(planning_horizon_H=0), dict(planning_candidates_L=-1),
                                 dict(planning_selection="best"), dict(planning_horizon_H=20),
                                 dict(planning_discount=0.0), dict(imagined_availability="argmax"),
                                 dict(rollout_length_k=2.5), dict(mode="dreamer"), dict(availability_threshold=1.0)])
def test_planning_config_errors_name_the_key(bad):
    (key,) = bad
    with pytest.raises(ValueError, match=rf"^{key}=.* is invalid"):
        PlanningConfig(**bad)


def test_planning_needs_r_m_only_with_more_than_one_candidate(nets, start):
    assert PlanningConfig(rollout_length_k=3, planning_horizon_H=3).planning_horizon_H == 3  # H = k is allowed
    for candidates in (2, 4):
        with pytest.raises(ValueError, match=r"^planning with candidates > 1 needs a model_reward \(R_m\) network$"):
            imagine(nets[0], nets[1], nets[2], None, start, PlanningConfig(planning_candidates_L=candidates))
    batch = imagine(nets[0], nets[1], nets[2], None, start,
                    PlanningConfig(rollout_length_k=2, planning_horizon_H=1, planning_candidates_L=1))
    assert batch.features.shape[:2] == (M, 2) and torch.isnan(batch.step_error).all()


def test_imagined_reward_discount_values_and_step_error_are_the_heads_on_the_right_state(nets, start):
    """reward_t / discount_t: agent means of the reward and continue heads on s_{t+1}; values: the critic on s_t;
    step_error_t: R_m on s_{t+1} averaged over starts and agents (contracts.md section 5)."""
    wm, _, critic, rm = nets
    k = 4
    batch = run(nets, start, PlanningConfig(rollout_length_k=k, planning_horizon_H=2, planning_candidates_L=3))
    with eval_mode(*nets), torch.no_grad():
        next_features = batch.features[:, 1:]  # s_1 .. s_{k-1}
        torch.testing.assert_close(batch.reward[:, :-1], wm.reward(next_features).mean(-1))
        torch.testing.assert_close(batch.discount[:, :-1], wm.continue_dist(next_features).probs.mean(-1))
        torch.testing.assert_close(batch.values[:, :k], critic(batch.features))
        torch.testing.assert_close(batch.step_error[:-1], rm(next_features).mean((0, 2)))
    assert batch.reward.std(0).min() > 0 and batch.step_error.std() > 0  # per start, per step


def test_step_noise_has_one_uniform_per_draw_of_the_step():
    """StepNoise's shapes: one action and availability uniform per agent, one per categorical and candidate, and
    the same for each of the H-1 lookahead steps of all L*M candidates (nothing broadcast or left over)."""
    wm = WorldModel(from_preset("small", n_categoricals=6), D, A)
    state = wm.initial_state((M, N))
    cfg = PlanningConfig(planning_horizon_H=4, planning_candidates_L=3)
    noise = StepNoise.draw(wm, state, cfg, torch.Generator().manual_seed(0))
    assert noise.action.action.shape == (M, N, 1) and noise.action.availability.shape == (M, N, A)
    assert noise.candidates.shape == (3, M, N, 6, 1)
    assert noise.lookahead.action.shape == (3, 3 * M, N, 1) and noise.lookahead.availability.shape == (3, 3 * M, N, A)
    assert noise.lookahead_latents.shape == (3, 3 * M, N, 6, 1)
    assert StepNoise.draw(wm, state, PlanningConfig(mode="mamba"))[2:] == (None, None)


def test_bfloat16_imagined_states_stay_in_the_networks_dtype(nets, start):
    """Every imagined step computes in bf16 when the networks are bf16: the kept latent and the features of
    every step (not float32 promoted by a one-hot)."""
    import copy

    half = [copy.deepcopy(net).to(torch.bfloat16) for net in nets]
    cfg = PlanningConfig(rollout_length_k=3, planning_horizon_H=2, planning_candidates_L=3)
    with planning_mode(*half):
        steps = list(imagination_steps(half[0], half[1], half[3], start, cfg, torch.Generator().manual_seed(0)))
    for step in steps:
        assert step.features.dtype == step.plan.next_state.stoch.dtype == step.plan.candidates.dtype == torch.bfloat16


def test_index_based_lookahead_equals_the_networks_on_one_hot_features(nets, start):
    """The lookahead's shared first layers (`lookahead_heads`) and index-based transition give what the networks
    and `WorldModel.transition` give on the one-hot features."""
    wm, actor, _, rm = nets
    index = start.stoch.argmax(-1)
    with eval_mode(*nets), torch.no_grad():
        error, av_probs, logits = lookahead_heads(wm, actor, rm, index, start.deter, with_policy=True)
        features = start.features()
        torch.testing.assert_close(error, rm(features))
        torch.testing.assert_close(av_probs, wm.av_action_dist(features).mean)
        torch.testing.assert_close(logits, actor.net(features))
        assert lookahead_heads(wm, actor, rm, index, start.deter, with_policy=False)[1:] == (None, None)
        action = torch.randint(0, A, index.shape[:-1])
        torch.testing.assert_close(wm.transition_from_indices(action, index, start.deter),
                                   wm.transition(start, F.one_hot(action, A).float()))


def test_lookahead_score_is_the_discounted_r_m_sum_along_the_policy_rollout(nets, start):
    """`candidate_scores` equals a hand-written dense rollout with the same uniforms: score =
    sum_i d**i mean_agents R_m(s_i), each step acting with the actor on the av head's sampled mask."""
    wm, actor, _, rm = nets
    cfg = PlanningConfig(planning_horizon_H=3, planning_candidates_L=2, planning_discount=0.5)
    g = torch.Generator().manual_seed(7)
    noise = StepNoise.draw(wm, start, cfg, g)
    with eval_mode(*nets), torch.no_grad():
        deter = wm.transition(start, F.one_hot(torch.zeros(M, N, dtype=torch.long), A).float())
        index = categorical_from_uniform(softmax_weights(wm.prior_logits(deter).expand(2, M, N, -1, -1)),
                                         noise.candidates)
        scores = candidate_scores(wm, actor, rm, deter, index, cfg, noise)
        state = RSSMState(one_hot(index, wm.cfg.n_classes, deter.dtype).flatten(0, 1), deter.repeat(2, 1, 1))
        expected = rm(state.features()).mean(-1)
        for i in range(2):
            features = state.features()
            mask = (noise.lookahead.availability[i] < torch.sigmoid(wm.av_action_head(features))).float()
            probs = actor(features, mask).probs
            action = torch.searchsorted(probs.cumsum(-1), noise.lookahead.action[i] * probs.sum(-1, keepdim=True),
                                        right=True).squeeze(-1).clamp_max(A - 1)
            deter_i = wm.transition(state, F.one_hot(action, A).float())
            latent = categorical_from_uniform(softmax_weights(wm.prior_logits(deter_i)), noise.lookahead_latents[i])
            state = RSSMState(one_hot(latent, wm.cfg.n_classes, deter_i.dtype), deter_i)
            expected = expected + 0.5 ** (i + 1) * rm(state.features()).mean(-1)
    torch.testing.assert_close(scores, expected.view(2, M))


def test_sampled_availability_mask_follows_the_heads_probabilities():
    probs = torch.full((20000, 1, 3), 0.8)
    noise = ActionNoise.draw(probs.shape[:-1], 3, torch.Generator().manual_seed(0))
    _, logits, mask = draw_action(probs, torch.zeros_like(probs), PlanningConfig(), noise)
    assert abs(mask.mean().item() - 0.8) < 0.01 and (logits[mask == 0] == MASKED_LOGIT).all()
    thresholded = draw_action(torch.tensor([[0.3, 0.7]]), torch.zeros(1, 2),
                              PlanningConfig(imagined_availability="threshold", availability_threshold=0.5),
                              ActionNoise.draw((1,), 2))[2]
    assert thresholded.tolist() == [[0.0, 1.0]]
