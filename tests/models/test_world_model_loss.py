"""`WorldModel.loss` term by term against a reference written from its definition (Algorithm 1 line 4; reference
``optim/loss.py:model_loss``), with the model's own heads as the only shared code; and the network shapes of
MAMBA's world model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rllib_mag.models import LOSS_TERMS, WorldModel, from_preset
from rllib_mag.models.layers import Linear, eval_mode, mlp
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor

T, B, N, D, A = 6, 3, 2, 5, 4
SCALES = {"kl": 0.5, "reconstruction": 2.0, "reward": 3.0, "continue": 0.25, "av_action": 1.5, "mi": 0.75}


def categorical_kl(q_logits, p_logits):
    q, p = torch.distributions.Categorical(logits=q_logits), torch.distributions.Categorical(logits=p_logits)
    return torch.distributions.kl_divergence(q, p)  # [..., C]


def reference_loss(model, batch, out):
    """Each per-step term [T, B, N], its masked mean and the scaled total, recomputed from `batch` and the heads on
    the posterior features `out.posterior.features()`."""
    cfg = model.cfg
    features = out.posterior.features()
    first = batch["is_first"][..., None].expand(T, B, N)
    after_last = torch.cat([torch.zeros(1, B), batch["is_last"][:-1]])[..., None].expand(T, B, N)
    balanced = (cfg.kl_balance * categorical_kl(out.posterior_logits.detach(), out.prior_logits)
                + (1 - cfg.kl_balance) * categorical_kl(out.posterior_logits, out.prior_logits.detach()))
    obs_pred, hidden = model.decoder(features)
    recon = F.huber_loss(obs_pred, batch["obs"], reduction="none")
    prev_action = torch.cat([torch.zeros_like(batch["action"][:1]), batch["action"][:-1]])
    av_logits = model.av_action_head(features)
    per_step = {
        "kl": balanced.mean(-1) if cfg.kl_reduction == "mean" else balanced.sum(-1),
        "reconstruction": recon.mean(-1) if cfg.reconstruction_reduction == "mean" else recon.sum(-1),
        "reward": F.huber_loss(model.reward_head(features)[..., 0], batch["reward"][..., None].expand(T, B, N),
                               reduction="none"),
        "continue": F.binary_cross_entropy_with_logits(
            model.continue_head(features)[..., 0], (1 - batch["is_terminal"])[..., None].expand(T, B, N),
            reduction="none"),
        "av_action": F.binary_cross_entropy_with_logits(av_logits, batch["action_mask"], reduction="none").sum(-1),
        "mi": F.cross_entropy(model.mi_head(hidden).flatten(0, -2), prev_action.flatten(),
                              reduction="none").view(T, B, N),
    }
    masks = {"kl": torch.ones(T, B, N), "continue": torch.ones(T, B, N), "av_action": torch.ones(T, B, N),
             "reconstruction": batch["alive"] if cfg.mask_dead_reconstruction else torch.ones(T, B, N),
             "reward": 1 - first, "mi": (1 - first) * (1 - after_last)}
    masks["mi"][0] = 0
    terms = {k: (per_step[k] * masks[k]).sum() / masks[k].sum() for k in LOSS_TERMS}
    return per_step, masks, terms, sum(cfg.loss_scales[k] * terms[k] for k in LOSS_TERMS)


@pytest.mark.parametrize("kl_reduction, reconstruction_reduction, mask_dead", [
    ("mean", "sum", False), ("sum", "mean", True)])
def test_loss_terms_equal_the_reference(kl_reduction, reconstruction_reduction, mask_dead):
    torch.manual_seed(0)
    cfg = from_preset("small", n_categoricals=6, kl_reduction=kl_reduction, kl_balance=0.8, loss_scales=SCALES,
                      reconstruction_reduction=reconstruction_reduction, mask_dead_reconstruction=mask_dead)
    model = WorldModel(cfg, D, A)
    batch = random_sequence_batch(T, B, N, D, A, seed=3)
    batch["action"] = batch["action"].clamp_max(A - 2)  # the last action never taken: one-hot width from A
    with eval_mode(model):
        out = model.loss(batch)
    per_step, masks, terms, total = reference_loss(model, batch, out)
    for k in LOSS_TERMS:
        torch.testing.assert_close(out.masks[k], masks[k], msg=k)
        torch.testing.assert_close(out.per_step[k], per_step[k] * masks[k], msg=k)
        torch.testing.assert_close(out.terms[k], terms[k], msg=k)
    torch.testing.assert_close(out.total, total)
    dead = batch["alive"] == 0
    assert (out.per_step["reconstruction"][dead] == 0).all() == mask_dead
    assert out.per_step["continue"][batch["is_terminal"].bool()].min() > 0  # a terminal row is scored


def test_kl_balance_trains_the_prior_with_a_and_the_posterior_with_1_minus_a():
    """One row from the zero state (the prior does not depend on the posterior head there): the KL term's gradient
    reaches the prior head in proportion to kl_balance and the posterior head in proportion to 1 - kl_balance."""
    def grads(balance):
        torch.manual_seed(0)
        model = WorldModel(from_preset("small", kl_balance=balance), D, A)
        kl = model.loss(random_sequence_batch(1, B, N, D, A, seed=1)).terms["kl"]
        prior, posterior = (torch.autograd.grad(kl, list(head.parameters()), retain_graph=True)
                            for head in (model.prior_head, model.posterior_head))
        return torch.cat([g.flatten() for g in prior]), torch.cat([g.flatten() for g in posterior])

    (prior_1, posterior_1), (prior_0, posterior_0), (prior_a, posterior_a) = grads(1.0), grads(0.0), grads(0.8)
    assert prior_1.abs().sum() > 0 and posterior_0.abs().sum() > 0
    assert (posterior_1 == 0).all() and (prior_0 == 0).all()
    torch.testing.assert_close(prior_a, 0.8 * prior_1)
    torch.testing.assert_close(posterior_a, 0.2 * posterior_0)


def test_head_errors_of_one_term_equal_those_of_all_terms():
    torch.manual_seed(0)
    model = WorldModel(from_preset("small"), D, A).eval()
    with torch.no_grad():
        out = model.loss(random_sequence_batch(T, B, N, D, A))
        features = out.posterior.features()
        every = model.head_errors(features, out.targets)
        for term in every:
            torch.testing.assert_close(model.head_errors(features, out.targets, (term,))[term], every[term])


def test_initial_state_and_transition_keep_leading_dims_device_and_dtype():
    torch.manual_seed(0)
    model = WorldModel(from_preset("small", n_categoricals=6), D, A)
    state = model.initial_state((2, 3, N))
    assert state.stoch.shape == (2, 3, N, 6, 8) and state.deter.shape == (2, 3, N, model.cfg.deter)
    state = type(state)(torch.eye(8)[torch.randint(0, 8, (2, 3, N, 6))], torch.randn(2, 3, N, model.cfg.deter))
    action = F.one_hot(torch.randint(0, A, (2, 3, N)), A).float()
    with eval_mode(model), torch.no_grad():  # no dropout: the two calls see the same network
        deter = model.transition(state, action)
        flat = model.transition(state.map(lambda x: x.flatten(0, 1)), action.flatten(0, 1))
    torch.testing.assert_close(deter.flatten(0, 1), flat)
    half = WorldModel(from_preset("small"), D, A).to(torch.bfloat16).initial_state((3, N))
    assert half.stoch.dtype == half.deter.dtype == torch.bfloat16


def layer_types(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.modules() if not list(m.children())]


def test_a_term_with_one_unmasked_row_is_that_rows_error():
    """The masked mean divides by the number of unmasked rows (here one: the reward of the second row)."""
    torch.manual_seed(0)
    model = WorldModel(from_preset("small"), D, A)
    out = model.loss(random_sequence_batch(2, 1, 1, D, A, seed=2))
    assert out.masks["reward"].sum() == 1
    torch.testing.assert_close(out.terms["reward"], out.per_step["reward"][1, 0, 0])


def test_networks_have_the_reference_layers():
    """MAMBA's world model (reference ``networks/dreamer``): ReLU Linear layers in the RSSM, ELU heads, an MI head
    on the decoder's hidden layer, and R_m an ELU MLP (``DenseModel``)."""
    cfg = from_preset("small", mlp_layers=3)
    model = WorldModel(cfg, D, A)
    elu_head = ["Linear", "ELU"] * cfg.head_layers + ["Linear"]
    for head in (model.reward_head, model.continue_head, model.av_action_head):
        assert layer_types(head) == elu_head
    assert layer_types(ModelRewardPredictor(cfg)) == ["Linear", "ELU"] * cfg.model_reward_layers + ["Linear"]
    assert layer_types(model.transition_input) == ["Linear", "ReLU"]
    assert layer_types(model.prior_head) == layer_types(model.posterior_head) == ["Linear", "ReLU", "Linear"]
    assert layer_types(model.mi_head) == ["Linear", "ELU", "Linear", "ReLU", "Linear"]
    assert layer_types(model.decoder.trunk) == ["Linear", "ReLU"] * (cfg.mlp_layers - 1) + ["Linear"]
    assert model.mi_head[-1].out_features == A and model.decoder.out.out_features == D
    net = mlp(3, 2, 3, 5, nn.Tanh)
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, Linear)] == [(3, 5), (5, 5), (5, 5), (5, 2)]
