"""World model, config and actor/critic tests (torch core, no Ray)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from rllib_mag.models import LOSS_TERMS, Actor, AttentionCritic, RSSMState, WorldModel, from_preset
from rllib_mag.models.actor_critic import MASKED_LOGIT
from rllib_mag.models.layers import categorical_from_uniform, eval_mode, one_hot, softmax_weights
from rllib_mag.models.synthetic import random_sequence_batch

T, B, N, D, A = 8, 3, 2, 6, 4


@pytest.fixture
def cfg():
    return from_preset("small", n_categoricals=6)  # 6 categoricals of 8 classes: a swapped latent axis shows


@pytest.fixture
def model(cfg):
    torch.manual_seed(0)
    return WorldModel(cfg, D, A)


@pytest.fixture
def batch():
    return random_sequence_batch(T, B, N, D, A)


def test_latent_kl_equals_torch_kl_divergence():
    from torch.distributions import Categorical, kl_divergence

    from rllib_mag.models.world_model import _categorical_kl
    torch.manual_seed(0)
    post, prior = torch.randn(2, 3, 4, 8) * 3, torch.randn(2, 3, 4, 8) * 3
    expected = kl_divergence(Categorical(logits=post), Categorical(logits=prior))
    torch.testing.assert_close(_categorical_kl(post, prior), expected)
    assert _categorical_kl(post, post).abs().max() < 1e-6


def test_training_latent_sample_is_straight_through_one_hot_of_softmax(model):
    """With gradients: the value is a one-hot draw of softmax(logits) (frequencies), and the gradient is that of
    the probabilities (``OneHotCategoricalStraightThrough.rsample``); without: the same one-hot, no graph."""
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0]]).repeat(20000, 1).requires_grad_()
    sample = model.sample_latent(logits, torch.Generator().manual_seed(0))
    assert torch.equal(sample.detach().sum(-1), torch.ones(20000))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    probs = logits[0].detach().softmax(-1)
    torch.testing.assert_close(sample.detach().mean(0), probs, atol=0.012, rtol=0)
    weights = torch.randn(20000, 4)
    (grad,) = torch.autograd.grad((sample * weights).sum(), logits)
    (expected,) = torch.autograd.grad((logits.softmax(-1) * weights).sum(), logits)
    torch.testing.assert_close(grad, expected)
    no_grad = model.sample_latent(logits.detach(), torch.Generator().manual_seed(0))
    assert not no_grad.requires_grad and torch.equal(no_grad, sample.detach())


def test_presets_and_config_errors():
    paper = from_preset("paper")
    assert (paper.hidden, paper.deter, paper.stoch, paper.attn_layers, paper.attn_heads, paper.dropout) == (
        256, 256, 1024, 3, 8, 0.1)
    assert paper.feature_dim == 1280 and from_preset("small", deter=32).deter == 32
    with pytest.raises(ValueError, match="paper.*small"):
        from_preset("huge")
    with pytest.raises(ValueError, match="hiden"):
        from_preset("small", hiden=3)
    for bad, message in ((dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
                         (dict(hidden=0), "hidden must be a positive int, got 0"),
                         (dict(kl_reduction="max"), "kl_reduction must be 'mean' or 'sum', got 'max'"),
                         (dict(attn_heads=3), r"hidden \(64\) must be divisible by attn_heads \(3\)"),
                         (dict(kl_balance=-0.1), r"kl_balance must be in \[0, 1\], got -0.1"),
                         (dict(kl_balance=1.5), r"kl_balance must be in \[0, 1\], got 1.5"),
                         (dict(loss_scales={"nope": 1.0}), r"unknown loss_scales keys \['nope'\]"),
                         (dict(world_model_lr=0.0), "world_model_lr must be > 0, got 0.0")):
        with pytest.raises(ValueError, match=message):
            from_preset("small", **bad)
    assert [from_preset("small", kl_balance=balance).kl_balance for balance in (0.0, 1.0)] == [0.0, 1.0]
    assert from_preset("small", dropout=0.0).dropout == 0.0
    # a partial loss_scales keeps the other terms at 1
    assert from_preset("small", loss_scales={"kl": 0.5}).loss_scales == {**dict.fromkeys(LOSS_TERMS, 1.0), "kl": 0.5}


def test_loss_shapes(model, batch, cfg):
    out = model.loss(batch)
    assert out.total.dim() == 0 and set(out.terms) == set(LOSS_TERMS) == set(out.per_step)
    for name in LOSS_TERMS:
        assert out.per_step[name].shape == (T, B, N) and torch.isfinite(out.per_step[name]).all()
        assert out.terms[name].dim() == 0
    assert out.posterior.stoch.shape == (T, B, N, cfg.n_categoricals, cfg.n_classes)
    assert out.posterior.deter.shape == (T, B, N, cfg.deter)
    assert out.posterior_logits.shape == out.prior_logits.shape == (T, B, N, cfg.n_categoricals, cfg.n_classes)
    assert out.posterior.features().shape == (T, B, N, cfg.feature_dim)
    torch.testing.assert_close(out.posterior.stoch.sum(-1), torch.ones(T, B, N, cfg.n_categoricals))


def test_gradient_flows_through_every_term(model, batch):
    out = model.loss(batch)
    heads = {"kl": model.prior_head, "reconstruction": model.decoder.out, "reward": model.reward_head,
             "continue": model.continue_head, "av_action": model.av_action_head, "mi": model.mi_head}
    for name, head in heads.items():
        params = [model.encoder[0].weight, model.agent_mixing.encoder.layers[0].linear1.weight,
                  next(head.parameters())]
        grads = torch.autograd.grad(out.terms[name], params, retain_graph=True, allow_unused=True)
        for g in grads:
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_masks_follow_contract(batch, cfg):
    out = WorldModel(from_preset("small", mask_dead_reconstruction=True), D, A).loss(batch)
    is_first = batch["is_first"]
    assert (out.masks["reward"][is_first.bool()] == 0).all() and (out.per_step["reward"][is_first.bool()] == 0).all()
    assert (out.masks["mi"][0] == 0).all() and (out.masks["mi"][is_first.bool()] == 0).all()
    assert out.masks["mi"][1:][~is_first[1:].bool()].min() == 1
    assert (out.per_step["reconstruction"][batch["alive"] == 0] == 0).all()


def test_state_resets_where_is_first(model, batch):
    with eval_mode(model):
        out = model.loss(batch)
    mid = batch["is_first"][:, 1].nonzero()[1].item()
    torch.testing.assert_close(out.posterior.deter[mid, 1], out.posterior.deter[0, 1])


def test_observe_step_matches_training_filter(model, batch):
    with eval_mode(model), torch.no_grad():
        torch.manual_seed(3)
        out = model.loss(batch)
        torch.manual_seed(3)
        state = model.initial_state((B, N))
        prev = torch.zeros(B, N, A)
        for t in range(T):
            state = model.observe_step(state, prev, batch["obs"][t], batch["is_first"][t])
            torch.testing.assert_close(state.deter, out.posterior.deter[t])
            torch.testing.assert_close(state.stoch, out.posterior.stoch[t])
            prev = F.one_hot(batch["action"][t], A).float()


def test_observe_step_draws_from_its_generator(model, batch):
    with eval_mode(model), torch.no_grad():
        states = []
        for global_seed in (0, 1):
            torch.manual_seed(global_seed)
            states.append(model.observe_step(model.initial_state((B, N)), torch.zeros(B, N, A), batch["obs"][0],
                                             batch["is_first"][0], torch.Generator().manual_seed(2)))
    assert torch.equal(states[0].stoch, states[1].stoch)


def test_imagined_transition_and_agent_mixing(model, cfg):
    with eval_mode(model), torch.no_grad():
        state = model.initial_state((5, 3))
        deter = model.transition(state, F.one_hot(torch.zeros(5, 3, dtype=torch.long), A).float())
        index = categorical_from_uniform(softmax_weights(model.prior_logits(deter)), torch.rand(5, 3, cfg.n_categoricals, 1))
        state = RSSMState(one_hot(index, cfg.n_classes, deter.dtype), deter)
        assert (state.stoch.sum(-1) == 1).all()
        assert state.stoch.shape == (5, 3, cfg.n_categoricals, cfg.n_classes) and state.deter.shape == (5, 3, cfg.deter)
        actions = torch.zeros(5, 3, dtype=torch.long)
        other = actions.clone()
        other[:, 2] = 1
        h1 = model.transition(state, F.one_hot(actions, A).float())
        h2 = model.transition(state, F.one_hot(other, A).float())
    assert not torch.allclose(h1[:, 0], h2[:, 0])  # agent 0's h depends on agent 2's action (attention)


def test_world_model_overfits_fixed_dataset():
    torch.manual_seed(0)
    data = random_sequence_batch(10, 4, 2, 8, 4, structured=True)
    model = WorldModel(from_preset("small", dropout=0.0), 8, 4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(data).total.item()
    for _ in range(150):
        loss = model.loss(data).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = model.loss(data).total.item()
    assert final < first / 4, (first, final)


def test_actor_masks_and_critic_mixes_agents(cfg):
    torch.manual_seed(0)
    actor, critic = Actor(cfg, A), AttentionCritic(cfg)
    feats = torch.randn(7, 3, cfg.feature_dim)
    mask = torch.ones(7, 3, A)
    mask[..., 1:3] = 0
    dist = actor(feats, mask)
    assert (dist.probs[..., 1:3] == 0).all()
    assert (actor.masked_logits(feats, mask)[..., 1:3] == MASKED_LOGIT).all()
    assert not ((dist.sample((50,)) == 1) | (dist.sample((50,)) == 2)).any()
    values = critic(feats)
    assert values.shape == (7, 3)
    # Linear-ReLU, agent attention, ReLU, then the reference's build_model(hidden, 1, 1, hidden): one hidden layer
    expected = critic.head(torch.relu(critic.attention(torch.relu(critic.embed[0](feats))))).squeeze(-1)
    torch.testing.assert_close(values, expected)
    assert sum(p.numel() for p in critic.head.parameters()) == cfg.hidden * (cfg.hidden + 1) + cfg.hidden + 1
    other = feats.clone()
    other[:, 2] += 1.0
    assert not torch.allclose(critic(other)[:, 0], values[:, 0])


def test_package_and_torch_core_import_no_ray_or_tune():
    """Layering: `import rllib_mag` and the torch core (models, planning, learning, compilation) import neither Ray
    nor Tune, and register nothing; `MAGConfig` loads Ray on first access."""
    code = ("import sys; import rllib_mag, rllib_mag.models, rllib_mag.planning, rllib_mag.learning, "
            "rllib_mag.compilation, rllib_mag.models.synthetic; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'jax', 'jaxmarl', 'gymnasium')]; "
            "assert not bad, bad[:5]; rllib_mag.MAGConfig; assert 'ray.rllib' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_filter_is_the_posterior_pass_of_the_loss(model, batch):
    """`filter` (imagination start states) gives the loss's posterior states and logits, draw for draw."""
    with torch.inference_mode():
        torch.manual_seed(3)
        out = model.loss(batch)
        torch.manual_seed(3)
        posterior, logits = model.filter(batch)
    assert torch.equal(posterior.stoch, out.posterior.stoch) and torch.equal(posterior.deter, out.posterior.deter)
    assert torch.equal(logits, out.posterior_logits)
