"""The hand-written building blocks equal the PyTorch modules whose parameters they use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rllib_mag.models.layers import (AgentAttention, Linear, categorical_from_uniform, gru_cell, init_weights,
                                     latent_columns, log_softmax, one_hot, one_hot_linear, post_ln_encoder_layer,
                                     sample_categorical, softmax_weights)


def test_linear_and_gru_cell_equal_torch_modules():
    torch.manual_seed(0)
    layer, x = Linear(7, 5), torch.randn(3, 4, 7)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert set(layer.state_dict()) == set(nn.Linear(7, 5).state_dict())
    cell, inputs, hidden = nn.GRUCell(7, 6), torch.randn(12, 7), torch.randn(12, 6)
    torch.testing.assert_close(gru_cell(cell, inputs, hidden), cell(inputs, hidden))
    # leading dims are kept: [3, 4, ...] in, [3, 4, 6] out
    torch.testing.assert_close(gru_cell(cell, inputs.view(3, 4, 7), hidden.view(3, 4, 6)),
                               cell(inputs, hidden).view(3, 4, 6))


@pytest.mark.parametrize("training", [False, True])
def test_post_ln_layer_equals_transformer_encoder_layer(training):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).train(training)
    with torch.no_grad():  # distinct values everywhere (fresh layer norms are all alike: weight 1, bias 0)
        for param in layer.parameters():
            param.normal_(0.0, 0.5)
    x = torch.randn(10, 5, 8)
    torch.testing.assert_close(post_ln_encoder_layer(layer, x), layer(x))
    attention = AgentAttention(8, 2, 2, 16, 0.0, 30).train(training)
    expected = attention.encoder(x + attention.agent_encoding[:5])
    torch.testing.assert_close(attention(x), expected)


def test_dropout_is_applied_only_in_training():
    torch.manual_seed(0)
    attention, x = AgentAttention(8, 1, 2, 16, 0.5, 30), torch.randn(10, 5, 8)
    assert not torch.allclose(attention.train()(x), attention.train()(x))
    torch.testing.assert_close(attention.eval()(x), attention.eval()(x))


def test_inverse_cdf_draw_matches_searchsorted_and_frequencies():
    torch.manual_seed(0)
    logits = torch.randn(50, 3, 6) * 3
    uniform = torch.rand(50, 3, 1)
    probs = logits.softmax(-1)
    cdf = probs.cumsum(-1)
    expected = torch.searchsorted(cdf, uniform * cdf[..., -1:], right=True).squeeze(-1).clamp_max(5)
    assert torch.equal(categorical_from_uniform(softmax_weights(logits), uniform), expected)
    # unnormalised weights give the same draw as normalised ones; masked (-1e10) logits are never drawn
    torch.testing.assert_close(softmax_weights(logits) / softmax_weights(logits).sum(-1, keepdim=True), probs)
    masked = logits.masked_fill(torch.arange(6) < 2, -1e10)
    assert (categorical_from_uniform(softmax_weights(masked), uniform) >= 2).all()
    target = torch.tensor([0.1, 0.6, 0.3])
    draws = sample_categorical(target.expand(20000, 3), torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.bincount(draws, minlength=3) / 20000.0, target, atol=0.015, rtol=0)


@pytest.mark.parametrize("classes", [8, 32])
def test_log_softmax_equals_torch_forward_and_backward(classes):
    """Both branches (written out below 16 classes, PyTorch's kernel from 16 on), values and gradients, and float32
    out of bf16 logits."""
    torch.manual_seed(0)
    logits = (torch.randn(40, 4, classes) * 5).requires_grad_()
    weights = torch.randn(40, 4, classes)
    ours = log_softmax(logits)
    torch.testing.assert_close(ours, F.log_softmax(logits, -1))
    (grad,) = torch.autograd.grad((ours * weights).sum(), logits)
    (expected,) = torch.autograd.grad((F.log_softmax(logits, -1) * weights).sum(), logits)
    torch.testing.assert_close(grad, expected)
    assert log_softmax(logits.detach().bfloat16()).dtype == torch.float32


def test_one_hot_equals_f_one_hot():
    index = torch.tensor([[0, 3], [2, 1]])
    assert torch.equal(one_hot(index, 4, torch.float32), F.one_hot(index, 4).float())


def test_one_hot_linear_equals_the_dense_layer_on_the_one_hot_input():
    torch.manual_seed(0)
    layer, dense = Linear(4 * 3 + 5, 6), torch.randn(7, 2, 5)
    index = torch.randint(0, 3, (7, 2, 4))  # 4 one-hot groups of 3 classes
    columns = latent_columns(index, 3)
    one_hot_part = one_hot(index, 3, torch.float32).flatten(-2)
    torch.testing.assert_close(one_hot_linear(layer.weight, layer.bias, columns, dense),
                               layer(torch.cat([one_hot_part, dense], -1)))
    only = Linear(12, 6)
    torch.testing.assert_close(one_hot_linear(only.weight, only.bias, columns), only(one_hot_part))


def test_inverse_cdf_draw_at_the_ends_of_the_unit_interval():
    """u = 0 never lands on a zero-probability class; u = 1 (or a rounded-up u * total) stays in range."""
    weights = torch.tensor([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0]])
    assert categorical_from_uniform(weights, torch.zeros(2, 1)).tolist() == [1, 0]
    assert categorical_from_uniform(weights, torch.ones(2, 1)).tolist() == [2, 2]


@pytest.mark.parametrize("scheme", ["orthogonal", "xavier"])
def test_init_weights_reinitialises_every_matrix_and_keeps_the_biases(scheme):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 9))
    biases = [net[0].bias.clone(), net[2].bias.clone()]
    init_weights(net, scheme)
    for layer, bias in zip((net[0], net[2]), biases):
        weight = layer.weight.detach()
        if scheme == "orthogonal":  # orthonormal rows (4 x 6) or columns (9 x 4)
            gram = weight @ weight.T if weight.shape[0] <= weight.shape[1] else weight.T @ weight
            torch.testing.assert_close(gram, torch.eye(min(weight.shape)), atol=1e-5, rtol=0)
        else:  # xavier uniform: bound sqrt(6 / (fan_in + fan_out)), nearly reached by 24-36 draws
            bound = (6 / sum(weight.shape)) ** 0.5
            assert weight.abs().max() <= bound and weight.abs().max() > 0.8 * bound
        assert torch.equal(layer.bias, bias)


def test_log_softmax_is_stable_for_large_and_distant_logits():
    """Shifted by each row's own maximum: rows near +1000 and -1000 in one tensor give PyTorch's values."""
    logits = torch.tensor([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, -1010.0]])
    torch.testing.assert_close(log_softmax(logits), F.log_softmax(logits, -1))


def test_agent_encoding_is_the_sinusoidal_table_and_not_saved():
    d_model, max_agents = 8, 30
    attention = AgentAttention(d_model, 1, 2, 16, 0.0, max_agents)
    position = torch.arange(max_agents, dtype=torch.float64)[:, None]
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    expected = torch.stack([torch.sin(position * frequency), torch.cos(position * frequency)], -1).flatten(1)
    torch.testing.assert_close(attention.agent_encoding, expected.float(), atol=2e-6, rtol=0)
    assert "agent_encoding" not in attention.state_dict()  # rebuilt from the config, never loaded
    assert attention(torch.randn(3, max_agents, d_model)).shape == (3, max_agents, d_model)  # exactly max_agents
    with pytest.raises(ValueError, match="31 agents exceed max_agents=30"):
        attention(torch.randn(3, max_agents + 1, d_model))


def test_post_ln_layer_drops_attention_weights_in_training():
    """With every other dropout off, attention-weight dropout alone still makes two training passes differ."""
    torch.manual_seed(0)
    layer, x = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, batch_first=True).train(), torch.randn(10, 5, 8)
    layer.dropout.p = layer.dropout1.p = layer.dropout2.p = 0.0
    assert layer.self_attn.dropout == 0.5
    assert not torch.allclose(post_ln_encoder_layer(layer, x), post_ln_encoder_layer(layer, x))
    layer.self_attn.dropout = 0.0
    torch.testing.assert_close(post_ln_encoder_layer(layer, x), post_ln_encoder_layer(layer, x))
