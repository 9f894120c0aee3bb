"""The hand-written building blocks equal the PyTorch modules whose parameters they use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rllib_mag.models.layers import (AgentAttention, Linear, categorical_from_uniform, gru_cell, latent_columns,
                                     log_softmax, one_hot, one_hot_linear, post_ln_encoder_layer, sample_categorical,
                                     softmax_weights)


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
