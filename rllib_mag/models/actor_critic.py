"""Decentralised actor and centralised attention critic of MAMBA (reference: ``networks/dreamer/action.py:Actor``,
``networks/dreamer/critic.py:AugmentedCritic`` / MAG's ``MADDPGCritic``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from rllib_mag.models.config import WorldModelConfig
from rllib_mag.models.layers import AgentAttention, init_weights, mlp

#: Logit given to unavailable actions (reference: -1e10).
MASKED_LOGIT = -1e10


def mask_logits(logits: Tensor, action_mask: Tensor) -> Tensor:
    """``logits`` with unavailable actions (``action_mask == 0``) set to ``MASKED_LOGIT``."""
    return logits.masked_fill(action_mask == 0, MASKED_LOGIT)


class Actor(nn.Module):
    """Per-agent shared MLP ``features [..., N, F] -> logits [..., N, A]`` (orthogonal init). Each agent sees only
    its own latent features ``[z, h]``."""

    def __init__(self, cfg: WorldModelConfig, n_actions: int) -> None:
        super().__init__()
        self.net = mlp(cfg.feature_dim, n_actions, cfg.head_layers, cfg.head_hidden)
        init_weights(self, "orthogonal")
        self.to(cfg.device)

    def masked_logits(self, features: Tensor, action_mask: Tensor) -> Tensor:
        """Logits with unavailable actions (``action_mask == 0``) set to ``MASKED_LOGIT``."""
        return mask_logits(self.net(features), action_mask)

    def forward(self, features: Tensor, action_mask: Tensor) -> Categorical:
        return Categorical(logits=self.masked_logits(features, action_mask))


class AttentionCritic(nn.Module):
    """Centralised critic: Linear-ReLU -> 1-layer agent attention (no dropout) -> ReLU -> MLP; one value per agent
    ``[..., N]`` (xavier init). The reference's unused ``prior`` MLP is omitted."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.hidden), nn.ReLU())
        self.attention = AgentAttention(cfg.hidden, cfg.critic_attn_layers, cfg.attn_heads, cfg.attn_ff, 0.0,
                                        cfg.max_agents)
        self.head = mlp(cfg.hidden, 1, 1, cfg.hidden)
        init_weights(self, "xavier")
        self.to(cfg.device)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(torch.relu(self.attention(self.embed(features)))).squeeze(-1)
