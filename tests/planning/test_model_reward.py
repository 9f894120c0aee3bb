"""R_m's labels: the error of the very candidate R_m sees (paper "Approximating R_m"), and that R_m trained on
them ranks candidates sharing one ``h`` (torch core, no Ray)."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from rllib_mag.learning.world_model_trainer import WorldModelTrainer, train_model_reward_step
from rllib_mag.models import FilterOutput, WorldModel, WorldModelOutput, from_preset
from rllib_mag.models.layers import eval_mode
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import (PAPER_TERMS, REFERENCE_TERMS, ModelRewardLabel, ModelRewardPredictor,
                                candidate_errors, label_pass, model_error_labels, model_reward_pairs)

D, A, N = 6, 4, 3


@pytest.fixture(scope="module")
def world_model():
    torch.manual_seed(0)
    return WorldModel(from_preset("small", n_categoricals=6), D, A).eval()  # 6 x 8: a swapped axis shows


@pytest.fixture(scope="module")
def output(world_model):
    with torch.no_grad():
        return world_model.loss(random_sequence_batch(6, 4, N, D, A, seed=1))


def test_candidate_equal_to_posterior_sample_has_the_world_model_losses(world_model, output):
    """Scoring the posterior's own latent gives the world-model loss of every head term, and the latent term
    ``-log q(z | h, o)`` of that latent."""
    features, errors = candidate_errors(world_model, output, output.posterior.stoch)
    torch.testing.assert_close(features, output.posterior.features())
    for term in ("reconstruction", "reward", "continue", "av_action", "mi"):
        torch.testing.assert_close(errors[term], output.per_step[term])
    log_q = output.posterior_logits.log_softmax(-1)
    expected = -(output.posterior.stoch * log_q).sum(-1).mean(-1)
    torch.testing.assert_close(errors["kl"], expected)


def test_candidate_labels_depend_on_the_candidate_posterior_labels_do_not(world_model, output):
    g = torch.Generator().manual_seed(0)
    label = ModelRewardLabel("candidate", PAPER_TERMS, model_reward_label_candidates=8)
    inputs, labels = model_reward_pairs(world_model, output, label, g)
    T, B = output.posterior.deter.shape[:2]
    assert inputs.shape == (8, T, B, N, world_model.cfg.feature_dim) and labels.shape == (8, T, B, N)
    assert not inputs.requires_grad and not labels.requires_grad
    # every candidate shares the real row's h_t, and is its own (one-hot) prior sample
    torch.testing.assert_close(inputs[..., -world_model.cfg.deter:],
                               output.posterior.deter.expand(8, *output.posterior.deter.shape))
    stoch = inputs[..., :world_model.cfg.stoch].unflatten(-1, (world_model.cfg.n_categoricals, -1))
    torch.testing.assert_close(stoch.sum(-1), torch.ones(8, T, B, N, world_model.cfg.n_categoricals))
    # the label is that candidate's own error: recomputed from the input alone
    recomputed = candidate_errors(world_model, output, stoch)[1]
    expected = recomputed["kl"] + recomputed["reconstruction"] / D + recomputed["reward"]
    torch.testing.assert_close(labels, expected)
    assert labels.std(0).mean() > 1e-3  # candidates at the same h differ in error
    posterior_inputs, posterior_labels = model_reward_pairs(world_model, output, ModelRewardLabel("posterior"), g)
    assert posterior_inputs.shape == (T, B, N, world_model.cfg.feature_dim)
    torch.testing.assert_close(posterior_labels, model_error_labels(output, PAPER_TERMS))


def test_reference_terms_add_the_head_losses_of_the_candidate(world_model, output):
    paper = model_reward_pairs(world_model, output, ModelRewardLabel(model_reward_label_candidates=2),
                               torch.Generator().manual_seed(3))
    full = model_reward_pairs(world_model, output, ModelRewardLabel(model_error_terms=REFERENCE_TERMS, model_reward_label_candidates=2),
                              torch.Generator().manual_seed(3))
    torch.testing.assert_close(paper[0], full[0])  # same draws
    stoch = paper[0][..., :world_model.cfg.stoch].unflatten(-1, (world_model.cfg.n_categoricals, -1))
    errors = candidate_errors(world_model, output, stoch)[1]
    torch.testing.assert_close(full[1] - paper[1], errors["continue"] + errors["av_action"] + errors["mi"])


@pytest.mark.parametrize("bad", [dict(model_reward_label="prior"), dict(model_error_terms=()),
                                 dict(model_error_terms=("kl", "typo")),
                                 dict(model_error_reconstruction_reduction="max"),
                                 dict(model_reward_label_candidates=0)])
def test_label_config_errors(bad):
    with pytest.raises(ValueError, match=rf"^{next(iter(bad))} must be"):
        ModelRewardLabel(**bad)


def test_label_terms_are_kept_as_a_tuple():
    label = ModelRewardLabel(model_error_terms=["reward", "kl"])
    assert label.model_error_terms == ("reward", "kl") and hash(label) == hash(ModelRewardLabel(
        model_error_terms=("reward", "kl")))


def test_latent_term_follows_kl_reduction(output):
    """``-log q(z | h, o)`` is averaged over categoricals with ``kl_reduction="mean"``, summed with ``"sum"``."""
    torch.manual_seed(0)
    summed = WorldModel(from_preset("small", n_categoricals=6, kl_reduction="sum"), D, A).eval()
    with torch.no_grad():
        out = summed.loss(random_sequence_batch(6, 4, N, D, A, seed=1))
        kl = candidate_errors(summed, out, out.posterior.stoch, ("kl",))[1]["kl"]
    per_categorical = -(out.posterior.stoch * out.posterior_logits.log_softmax(-1)).sum(-1)
    torch.testing.assert_close(kl, per_categorical.sum(-1))
    assert per_categorical.shape[-1] == 6


@pytest.mark.parametrize("mode", ["candidate", "posterior"])
@pytest.mark.parametrize("model_reduction", ["sum", "mean"])
def test_summed_reconstruction_label_is_obs_dim_times_the_mean(mode, model_reduction):
    """Whichever reduction the world model trains with, the label's reconstruction term is summed or averaged over
    obs dims as the label asks."""
    torch.manual_seed(0)
    world_model = WorldModel(from_preset("small", reconstruction_reduction=model_reduction), D, A).eval()
    with torch.no_grad():
        output = world_model.loss(random_sequence_batch(6, 4, N, D, A, seed=1))
    pairs = {reduction: model_reward_pairs(world_model, output, ModelRewardLabel(mode, ("reconstruction",),
                                                                                 reduction),
                                           torch.Generator().manual_seed(4)) for reduction in ("mean", "sum")}
    torch.testing.assert_close(pairs["sum"][0], pairs["mean"][0])  # the same draws
    torch.testing.assert_close(pairs["sum"][1], D * pairs["mean"][1])
    assert pairs["mean"][1].abs().sum() > 0
    with pytest.raises(ValueError, match="^model_error_reconstruction_reduction must be"):
        model_error_labels(output, ("reconstruction",), "median")


@pytest.mark.parametrize("mode", ["candidate", "posterior"])
def test_pairs_follow_the_generator_not_the_global_rng(world_model, output, mode):
    label = ModelRewardLabel(mode)
    torch.manual_seed(0)
    first = model_reward_pairs(world_model, output, label, torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    again = model_reward_pairs(world_model, output, label, torch.Generator().manual_seed(5))
    other = model_reward_pairs(world_model, output, label, torch.Generator().manual_seed(6))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_the_candidate_label_needs_only_the_filter_and_gets_the_same_pairs(world_model):
    """``label_pass``: the default label runs ``WorldModel.filtered`` (no heads on the posterior, no losses) and
    its pairs equal those from the whole loss, draw for draw; the posterior label needs the loss's output."""
    batch = random_sequence_batch(6, 4, N, D, A, seed=2)
    with torch.no_grad():
        torch.manual_seed(7)
        full = world_model.loss(batch)
        torch.manual_seed(7)  # the filter's posterior draws
        filtered = label_pass(world_model, batch, ModelRewardLabel())
    assert type(filtered) is FilterOutput
    assert isinstance(label_pass(world_model, batch, ModelRewardLabel("posterior")), WorldModelOutput)
    label = ModelRewardLabel(model_error_terms=REFERENCE_TERMS, model_reward_label_candidates=2)
    from_filter = model_reward_pairs(world_model, filtered, label, torch.Generator().manual_seed(3))
    from_loss = model_reward_pairs(world_model, full, label, torch.Generator().manual_seed(3))
    assert torch.equal(from_filter[0], from_loss[0]) and torch.equal(from_filter[1], from_loss[1])
    with pytest.raises(TypeError, match="'posterior' R_m label is the posterior's losses: pass WorldModel.loss's "
                                        "output, not FilterOutput"):
        model_reward_pairs(world_model, filtered, ModelRewardLabel("posterior"))


def _rank_correlation(world_model, model_reward, batch, n_candidates=16, seed=0):
    """Mean over held-out rows of the Spearman correlation between R_m's scores of candidates sharing one h and
    the candidates' true errors (their ``"candidate"`` labels)."""
    with torch.no_grad():
        output = world_model.loss(batch)
        inputs, labels = model_reward_pairs(world_model, output, ModelRewardLabel(model_reward_label_candidates=n_candidates),
                                            torch.Generator().manual_seed(seed))
        scores = model_reward(inputs)
    scores, labels = scores.flatten(1).T.numpy(), labels.flatten(1).T.numpy()  # [rows, candidates]
    return float(sum(spearmanr(s, l).statistic for s, l in zip(scores, labels)) / len(scores))


def test_model_reward_learns_to_rank_candidates_on_held_out_rows():
    """Done-when test of issue 8: R_m trained on candidate labels ranks held-out candidates (Spearman > 0.5); the
    released code's posterior label cannot (it does not depend on the sample R_m sees)."""
    torch.manual_seed(0)
    cfg = from_preset("small")
    world_model = WorldModel(cfg, D, A)
    trainer = WorldModelTrainer(world_model, ModelRewardPredictor(cfg))
    for seed in range(40):  # a world model that has learned something, so candidate errors are structured
        trainer.world_model_step(random_sequence_batch(8, 8, N, D, A, seed=seed, structured=True))
    world_model.eval()
    correlations = {}
    for mode in ("candidate", "posterior"):
        torch.manual_seed(1)
        model_reward = ModelRewardPredictor(cfg)
        optimizer = torch.optim.Adam(model_reward.parameters(), lr=1e-3)
        label = ModelRewardLabel(mode, model_reward_label_candidates=4)
        g = torch.Generator().manual_seed(2)
        for seed in range(300):
            with eval_mode(world_model), torch.no_grad():
                output = world_model.loss(random_sequence_batch(8, 8, N, D, A, seed=100 + seed % 30,
                                                                structured=True))
            train_model_reward_step(model_reward, optimizer, *model_reward_pairs(world_model, output, label, g))
        held_out = random_sequence_batch(8, 8, N, D, A, seed=999, structured=True)
        correlations[mode] = _rank_correlation(world_model, model_reward, held_out)
    assert correlations["candidate"] > 0.5, correlations
    assert correlations["posterior"] < correlations["candidate"] - 0.3, correlations
