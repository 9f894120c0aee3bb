"""Building blocks shared by the world model, actor, critic and R_m (reference: ``networks/dreamer/*``,
``networks/transformer/layers.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def mlp(in_dim: int, out_dim: int, layers: int, hidden: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Reference ``build_model``: Linear(in, h)-act, (layers - 1) x [Linear(h, h)-act], Linear(h, out)."""
    modules: list[nn.Module] = [nn.Linear(in_dim, hidden), act()]
    for _ in range(layers - 1):
        modules += [nn.Linear(hidden, hidden), act()]
    modules.append(nn.Linear(hidden, out_dim))
    return nn.Sequential(*modules)


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
        return self.encoder(x.reshape(-1, *x.shape[-2:])).reshape(x.shape)


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Index sample ``[...]`` from ``probs [..., K]`` by inverse-CDF sampling with one uniform per distribution
    drawn from ``generator`` (``torch.distributions`` samplers take no generator; ``torch.multinomial`` draws K
    exponentials per row, which dominated imagination time)."""
    cdf = probs.float().cumsum(-1)  # float32 even for bfloat16 probs: a low-precision CDF biases the draw
    u = torch.rand(*probs.shape[:-1], 1, generator=generator, device=probs.device)
    index = torch.searchsorted(cdf, u * cdf[..., -1:], right=True).squeeze(-1)
    return index.clamp_max(probs.shape[-1] - 1)


def sample_one_hot(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-hot sample ``[..., K]`` of ``probs [..., K]`` (no gradient), drawn from ``generator``."""
    index = sample_categorical(probs, generator)
    return torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)


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
