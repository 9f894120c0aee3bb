"""Building blocks shared by the world model, actor, critic and R_m (reference: ``networks/dreamer/*``,
``networks/transformer/layers.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear`` as a matmul plus a separate bias add. CPU ``addmm`` first copies the broadcast bias into its
    output (one more pass over memory than the GEMM's own); written this way, ``torch.compile`` folds the bias into
    the next pointwise kernel (activation, residual add)."""
    out = torch.matmul(x, weight.t())
    return out if bias is None else out + bias


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) computed by ``linear``."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def one_hot_linear(weight: Tensor, bias: Tensor, columns: Tensor, dense: Tensor | None = None) -> Tensor:
    """``linear([x_one_hot, dense], weight, bias)`` where ``x_one_hot`` is 1 exactly at the input columns
    ``columns [..., J]``: its product with ``weight`` is the sum of those J weight columns (an embedding-bag
    lookup) instead of a GEMM over the whole one-hot width; ``dense [..., D]`` meets the last D columns. Same math
    as the dense layer up to float summation order."""
    one_hot_width = weight.shape[1] - (0 if dense is None else dense.shape[-1])
    table = weight[:, :one_hot_width].t().contiguous()
    out = F.embedding_bag(columns.reshape(-1, columns.shape[-1]), table, mode="sum").view(*columns.shape[:-1], -1)
    out = out + bias
    return out if dense is None else out + linear(dense, weight[:, one_hot_width:], None)


def latent_columns(index: Tensor, n_classes: int) -> Tensor:
    """Positions ``[..., C]`` of the ones of a flattened ``[C, K]`` one-hot latent with class indices ``index``."""
    return index + n_classes * torch.arange(index.shape[-1], device=index.device)


def mlp(in_dim: int, out_dim: int, layers: int, hidden: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Reference ``build_model``: Linear(in, h)-act, (layers - 1) x [Linear(h, h)-act], Linear(h, out)."""
    modules: list[nn.Module] = [Linear(in_dim, hidden), act()]
    for _ in range(layers - 1):
        modules += [Linear(hidden, hidden), act()]
    modules.append(Linear(hidden, out_dim))
    return nn.Sequential(*modules)


def gru_cell(cell: nn.GRUCell, x: Tensor, h: Tensor) -> Tensor:
    """``cell(x, h)`` for ``x [..., in]``, ``h [..., hidden]`` with PyTorch's GRU equations written out (reset gate
    applied to ``W_hn h + b_hn``), so that ``torch.compile`` fuses the gates into one kernel."""
    reset_i, update_i, new_i = linear(x, cell.weight_ih, cell.bias_ih).chunk(3, -1)
    reset_h, update_h, new_h = linear(h, cell.weight_hh, cell.bias_hh).chunk(3, -1)
    reset, update = torch.sigmoid(reset_i + reset_h), torch.sigmoid(update_i + update_h)
    new = torch.tanh(new_i + reset * new_h)
    return new + update * (h - new)


def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise every parameter with >= 2 dims (``"xavier"`` uniform or ``"orthogonal"``); biases keep
    PyTorch's default, as in the reference."""
    init = {"xavier": nn.init.xavier_uniform_, "orthogonal": nn.init.orthogonal_}[scheme]
    for param in module.parameters():
        if param.dim() >= 2:
            init(param)


class AgentAttention(nn.Module):
    """Sinusoidal agent-index positional encoding + post-LN ReLU ``nn.TransformerEncoder`` over the agent axis
    (reference ``AttentionEncoder``). Input/output ``[..., N, d_model]``; leading dims are flattened into the
    transformer batch."""

    def __init__(self, d_model: int, layers: int, heads: int, ff: int, dropout: float, max_agents: int) -> None:
        super().__init__()
        position = torch.arange(max_agents, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_agents, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div[: d_model // 2])
        self.register_buffer("agent_encoding", table, persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, activation="relu", batch_first=True,
                                           norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        n_agents = x.shape[-2]
        if n_agents > self.agent_encoding.shape[0]:
            raise ValueError(f"{n_agents} agents exceed max_agents={self.agent_encoding.shape[0]}")
        x = x + self.agent_encoding[:n_agents]
        hidden = x.reshape(-1, *x.shape[-2:])
        for layer in self.encoder.layers:
            hidden = post_ln_encoder_layer(layer, hidden)
        return hidden.reshape(x.shape)


def _small_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` over a handful of agents as broadcast products and sums, which inductor fuses
    into one loop (ATen's attention and ``bmm`` kernels are slow on 5 x 5 score matrices)."""
    scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / math.sqrt(q.shape[-1])
    return (scores.softmax(-1).unsqueeze(-1) * v.unsqueeze(-3)).sum(-2)


def post_ln_encoder_layer(layer: nn.TransformerEncoderLayer, x: Tensor) -> Tensor:
    """``layer(x)`` for a post-LN ReLU ``nn.TransformerEncoderLayer`` on ``x [B, N, d]``, written with
    ``scaled_dot_product_attention`` so that ``torch.compile`` can fuse it (PyTorch's eval fast path is one opaque
    kernel) and eager training takes the same code. Same parameters, same math, same dropout sites."""
    attn, heads = layer.self_attn, layer.self_attn.num_heads
    q, k, v = linear(x, attn.in_proj_weight, attn.in_proj_bias).unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4)
    if torch.compiler.is_compiling() and not layer.training:
        mixed = _small_attention(q, k, v)
    else:
        mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.dropout if layer.training else 0.0)
    mixed = linear(mixed.transpose(1, 2).flatten(-2), attn.out_proj.weight, attn.out_proj.bias)
    x = layer.norm1(x + layer.dropout1(mixed))
    hidden = layer.dropout(F.relu(linear(x, layer.linear1.weight, layer.linear1.bias)))
    return layer.norm2(x + layer.dropout2(linear(hidden, layer.linear2.weight, layer.linear2.bias)))


def categorical_from_uniform(weights: Tensor, uniform: Tensor) -> Tensor:
    """Inverse-CDF draw ``[...]`` from unnormalised ``weights [..., K]`` with one ``uniform [..., 1]`` in [0, 1)
    per distribution: the number of CDF entries ``<= u * total`` (``searchsorted(right=True)`` as a comparison,
    which ``torch.compile`` fuses). The CDF is float32 even for bf16 weights: a low-precision CDF biases the draw."""
    cdf = weights.float().cumsum(-1)
    index = (cdf <= uniform * cdf[..., -1:]).sum(-1)
    return index.clamp_max(weights.shape[-1] - 1)


def softmax_weights(logits: Tensor) -> Tensor:
    """``exp(logits - max)``: ``softmax(logits)`` up to its normaliser, which ``categorical_from_uniform`` does not
    need (PyTorch's CPU softmax over a last dim of 8-32 runs at ~1/20 of memory speed)."""
    return (logits - logits.amax(-1, keepdim=True)).exp()


def log_softmax(logits: Tensor) -> Tensor:
    """``log_softmax(logits, -1)`` in float32. Over fewer than 16 classes written out as ``x - max - log sum
    exp(x - max)``: PyTorch's CPU kernel vectorises over the class axis and is ~3.5x slower there (forward and
    backward, 8 classes); from 16 classes on its own kernel is faster."""
    logits = logits.float()
    if logits.shape[-1] >= 16:
        return F.log_softmax(logits, -1)
    shifted = logits - logits.amax(-1, keepdim=True).detach()
    return shifted - shifted.exp().sum(-1, keepdim=True).log()


def one_hot(index: Tensor, classes: int, dtype: torch.dtype) -> Tensor:
    """``F.one_hot(index, classes).to(dtype)`` as a comparison (no range assert, so it fuses under compile)."""
    return (index[..., None] == torch.arange(classes, device=index.device)).to(dtype)


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Index sample ``[...]`` from (unnormalised) ``probs [..., K]``, one uniform per distribution drawn from
    ``generator`` (``torch.distributions`` samplers take no generator; ``torch.multinomial`` draws K exponentials
    per row, which dominated imagination time)."""
    uniform = torch.rand(*probs.shape[:-1], 1, generator=generator, device=probs.device)
    return categorical_from_uniform(probs, uniform)


def sample_one_hot(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-hot sample ``[..., K]`` of (unnormalised) ``probs [..., K]`` (no gradient), drawn from ``generator``."""
    return one_hot(sample_categorical(probs, generator), probs.shape[-1], probs.dtype)


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode (dropout off) and restore each one's previous mode afterwards."""
    previous = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, previous):
            m.train(mode)
