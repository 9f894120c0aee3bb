"""MAMBA's multi-agent RSSM world model with weights shared across agents (reference: MAMBA/MAG
``agent/models/DreamerModel.py``, ``networks/dreamer/{rnns,vae,dense}.py``, ``agent/optim/loss.py:model_loss``).

Per agent i and step t (Algorithm 1 line 4 trains it with one-step prediction losses):

* ``u_i = ReLU(Linear([a_{t-1}, z_{t-1}]_i))``; ``(u'_1..u'_N) = Attention(u_1..u_N)`` (agent-index positional
  encoding; this is MAMBA's communication channel); ``h_t = GRUCell(u'_i, h_{t-1,i})``;
* prior ``p(z_t | h_t)`` and posterior ``q(z_t | h_t, embed(o_t))``: ``n_categoricals`` one-hot categoricals with
  straight-through samples;
* heads on ``features = [z_t, h_t]``: observation decoder, reward (the team reward, predicted by every agent),
  continue (Bernoulli), available actions (independent Bernoulli per action) and the mutual-information head
  predicting the agent's own previous action ``a_{t-1}`` from the decoder's hidden features.

Batches follow ``docs/contracts.md`` section 3 (DreamerV3 rows: row t is the arrival at ``o_t``; the recurrent
state and previous action are reset where ``is_first``). Because row t carries ``r_t`` (reward on arrival), the
reward head reads ``[z_t, h_t]`` where ``h_t`` already contains ``a_{t-1}``; the released code reads
``[z_{t-1}, h_t]`` for the same target, which is the same information up to the latent sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import _pytree as pytree
from torch.distributions import Bernoulli, Independent

from rllib_mag.models.config import LOSS_TERMS, WorldModelConfig
from rllib_mag.models.layers import (AgentAttention, Linear, gru_cell, init_weights, latent_columns, log_softmax,
                                     mlp, one_hot_linear, sample_one_hot, softmax_weights)


#: Loss terms computed by the heads on the features (every term but the latent KL).
HEAD_TERMS: tuple[str, ...] = tuple(term for term in LOSS_TERMS if term != "kl")


def _categorical_kl(post_logits: Tensor, prior_logits: Tensor) -> Tensor:
    """``KL(q || p) = sum_k q_k (log q_k - log p_k)`` per categorical ``[..., C]`` (``kl_divergence`` of two
    ``Categorical``s, written out: its ``inf``/``0`` masking by indexing and PyTorch's CPU softmax over 8-32
    classes were a fifth of the world-model step)."""
    log_q, log_p = log_softmax(post_logits), log_softmax(prior_logits)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def _shift_one_row(x: Tensor) -> Tensor:
    """``x`` delayed by one row along time (dim 0), zeros in the first row: ``a_{t-1}`` from ``a_t``."""
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]])


@dataclass(frozen=True)
class RSSMState:
    """Recurrent state: ``stoch [..., N, C, K]`` one-hot latents and ``deter [..., N, deter]`` GRU state."""

    stoch: Tensor
    deter: Tensor

    def features(self) -> Tensor:
        """``concat(z flat, h)`` -> ``[..., N, C*K + deter]``."""
        return torch.cat([self.stoch.flatten(-2), self.deter], dim=-1)

    def map(self, fn: Callable[[Tensor], Tensor]) -> RSSMState:
        """Apply ``fn`` (indexing, reshaping leading dims, ``detach``, ``to``...) to both tensors."""
        return RSSMState(fn(self.stoch), fn(self.deter))

    def reset(self, keep: Tensor) -> RSSMState:
        """Zero the state where ``keep [...]`` (batch shape without the agent axis) is 0."""
        return RSSMState(self.stoch * keep[..., None, None, None], self.deter * keep[..., None, None])

    @staticmethod
    def stack(states: Sequence[RSSMState], dim: int = 0) -> RSSMState:
        return RSSMState(torch.stack([s.stoch for s in states], dim), torch.stack([s.deter for s in states], dim))


#: A pytree node, so that compiled functions can take and return states (``rllib_mag.compilation``).
pytree.register_dataclass(RSSMState)


@dataclass(frozen=True)
class LossTargets:
    """What the heads are scored against, per step and agent (built once by ``WorldModel.loss``).

    Attributes:
        obs: observations ``o_t`` ``[T, B, N, D]``.
        reward: the team reward on arrival at ``o_t``, per agent ``[T, B, N]``.
        continues: ``1 - is_terminal`` per agent ``[T, B, N]``.
        action_mask: availability masks ``[T, B, N, A]``.
        prev_action: index of the agent's own previous action ``a_{t-1}`` ``[T, B, N]`` (MI target).
    """

    obs: Tensor
    reward: Tensor
    continues: Tensor
    action_mask: Tensor
    prev_action: Tensor


@dataclass
class FilterOutput:
    """The posterior filter over a real batch and what the heads are scored against (``WorldModel.filtered``):
    all that R_m's candidate labels need, without the heads and losses of ``WorldModel.loss``.

    Attributes:
        posterior: posterior states ``[T, B, N, ...]`` (the filtered states; imagination start states).
        posterior_logits, prior_logits: ``[T, B, N, C, K]`` logits of ``q(z_t | h_t, o_t)`` and ``p(z_t | h_t)``.
        targets: the heads' targets (``head_errors`` scores other features against them, e.g. R_m's candidates).
        masks: ``[T, B, N]`` 0/1 weights of each loss term.
        obs_dim: observation size and
        reconstruction_reduction: how the reconstruction error reduces obs dims (``"sum"``/``"mean"``).
    """

    posterior: RSSMState
    posterior_logits: Tensor
    prior_logits: Tensor
    targets: LossTargets
    masks: dict[str, Tensor]
    obs_dim: int
    reconstruction_reduction: str

    def prior_sample(self, generator: torch.Generator | None = None) -> RSSMState:
        """``(z_t ~ p(z_t | h_t), h_t)``: a latent drawn from the prior at the posterior's ``h_t`` (no gradient),
        as imagination draws its candidates."""
        logits = self.prior_logits.detach()
        return RSSMState(sample_one_hot(softmax_weights(logits), generator), self.posterior.deter)


@dataclass
class WorldModelOutput(FilterOutput):
    """Result of ``WorldModel.loss``: the ``FilterOutput`` and the losses.

    Attributes:
        total: scalar loss (weighted sum of ``terms``).
        terms: scalar loss per term (masked mean of ``per_step``).
        per_step: per-step, per-agent losses ``[T, B, N]`` (zero where masked).
    """

    total: Tensor
    terms: dict[str, Tensor]
    per_step: dict[str, Tensor]


class Decoder(nn.Module):
    """Observation decoder; also returns its last hidden features (input of the MI head), as ``vae.py:Decoder``."""

    def __init__(self, cfg: WorldModelConfig, obs_dim: int) -> None:
        super().__init__()
        self.trunk = mlp(cfg.feature_dim, cfg.hidden, cfg.mlp_layers - 1, cfg.hidden)
        self.out = Linear(cfg.hidden, obs_dim)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        hidden = F.relu(self.trunk(features))
        return self.out(hidden), hidden


class WorldModel(nn.Module):
    """Shared-weight multi-agent RSSM (MAMBA). ``obs_dim``/``n_actions`` are per agent; any N works."""

    def __init__(self, cfg: WorldModelConfig, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.cfg, self.obs_dim, self.n_actions = cfg, obs_dim, n_actions
        feat, latent = cfg.feature_dim, cfg.stoch
        self.encoder = mlp(obs_dim, cfg.embed, cfg.mlp_layers, cfg.hidden)
        self.transition_input = nn.Sequential(Linear(n_actions + latent, cfg.hidden), nn.ReLU())
        self.agent_mixing = AgentAttention(cfg.hidden, cfg.attn_layers, cfg.attn_heads, cfg.attn_ff, cfg.dropout,
                                           cfg.max_agents)
        self.gru = nn.GRUCell(cfg.hidden, cfg.deter)
        self.prior_head = mlp(cfg.deter, latent, 1, cfg.hidden)
        self.posterior_head = mlp(cfg.deter + cfg.embed, latent, 1, cfg.hidden)
        self.decoder = Decoder(cfg, obs_dim)
        self.reward_head = mlp(feat, 1, cfg.head_layers, cfg.head_hidden, nn.ELU)
        self.continue_head = mlp(feat, 1, cfg.head_layers, cfg.head_hidden, nn.ELU)
        self.av_action_head = mlp(feat, n_actions, cfg.head_layers, cfg.head_hidden, nn.ELU)
        self.mi_head = nn.Sequential(mlp(cfg.hidden, cfg.hidden, 1, cfg.hidden, nn.ELU), nn.ReLU(),
                                     Linear(cfg.hidden, n_actions))
        init_weights(self, "xavier")
        self.to(cfg.device)

    # ----------------------------------------------------------------- state transitions
    def initial_state(self, batch_shape: Sequence[int]) -> RSSMState:
        """All-zero state on the model's device and dtype; ``batch_shape`` includes the agent axis, e.g. ``(B, N)``."""
        cfg = self.cfg
        like = {"device": self.gru.weight_ih.device, "dtype": self.gru.weight_ih.dtype}
        return RSSMState(torch.zeros(*batch_shape, cfg.n_categoricals, cfg.n_classes, **like),
                         torch.zeros(*batch_shape, cfg.deter, **like))

    def latent_logits(self, head: nn.Module, x: Tensor) -> Tensor:
        return head(x).unflatten(-1, (self.cfg.n_categoricals, self.cfg.n_classes))

    def sample_latent(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One-hot sample ``[..., C, K]`` of ``softmax(logits)`` drawn with ``generator``; when gradients flow
        (training) with the straight-through gradient ``onehot + (p - sg(p))`` of
        ``OneHotCategoricalStraightThrough.rsample`` (DreamerV2). Written out: the distribution object cannot take
        a generator, and its ``logsumexp`` normalisation costs several times the draw itself."""
        if not logits.requires_grad:
            return sample_one_hot(softmax_weights(logits), generator)
        probs = log_softmax(logits).exp()
        return sample_one_hot(probs.detach(), generator) + (probs - probs.detach())

    def transition(self, state: RSSMState, action_onehot: Tensor) -> Tensor:
        """Deterministic step ``h_t = GRU(Attention(ReLU(Linear([a_{t-1}, z_{t-1}]))), h_{t-1})``."""
        return self._recurrent_step(self.transition_input(torch.cat([action_onehot, state.stoch.flatten(-2)], -1)),
                                    state.deter)

    def transition_from_indices(self, action: Tensor, latent_index: Tensor, deter: Tensor) -> Tensor:
        """``transition`` from the indices of the one-hot inputs: action ``[..., N]`` and latent classes
        ``[..., N, C]``. The input layer's product with ``[a, z]`` is then a sum of C + 1 weight columns
        (``one_hot_linear``), not a GEMM over the ``A + C*K`` one-hot width (the planner's lookahead)."""
        layer = self.transition_input[0]
        columns = torch.cat([action[..., None], self.n_actions + latent_columns(latent_index, self.cfg.n_classes)], -1)
        return self._recurrent_step(F.relu(one_hot_linear(layer.weight, layer.bias, columns)), deter)

    def _recurrent_step(self, transition_input: Tensor, deter: Tensor) -> Tensor:
        return gru_cell(self.gru, self.agent_mixing(transition_input), deter)

    def prior_logits(self, deter: Tensor) -> Tensor:
        """Logits ``[..., N, C, K]`` of the prior ``p(z_t | h_t)``."""
        return self.latent_logits(self.prior_head, deter)

    def _observe(self, prev_state: RSSMState, prev_action_onehot: Tensor, embed: Tensor, is_first: Tensor,
                 generator: torch.Generator | None) -> tuple[RSSMState, Tensor]:
        keep = 1.0 - is_first.to(embed.dtype)
        prev_state = prev_state.reset(keep)
        deter = self.transition(prev_state, prev_action_onehot * keep[..., None, None])
        post_logits = self.latent_logits(self.posterior_head, torch.cat([deter, embed], -1))
        return RSSMState(self.sample_latent(post_logits, generator), deter), post_logits

    def observe_step(self, prev_state: RSSMState, prev_action_onehot: Tensor, obs: Tensor, is_first: Tensor,
                     generator: torch.Generator | None = None) -> RSSMState:
        """Posterior filter step used when acting: reset where ``is_first [...]``, transition with the previous
        action ``[..., N, A]``, then sample ``z_t ~ q(z_t | h_t, o_t)``. ``obs [..., N, D]``."""
        return self._observe(prev_state, prev_action_onehot, self.encoder(obs), is_first, generator)[0]

    # ----------------------------------------------------------------- heads
    def reward(self, features: Tensor) -> Tensor:
        """Per-agent prediction ``[..., N]`` of the team reward."""
        return self.reward_head(features).squeeze(-1)

    def continue_dist(self, features: Tensor) -> Bernoulli:
        """``Bernoulli`` over ``1 - is_terminal`` per agent; ``.probs`` is the imagined discount."""
        return Bernoulli(logits=self.continue_head(features).squeeze(-1), validate_args=False)

    def av_action_probs(self, features: Tensor) -> Tensor:
        """Availability probabilities ``[..., N, A]`` (the mean of ``av_action_dist``)."""
        return torch.sigmoid(self.av_action_head(features))

    def av_action_dist(self, features: Tensor) -> Independent:
        """Independent Bernoulli per action over the availability mask ``[..., N, A]``."""
        return Independent(Bernoulli(logits=self.av_action_head(features), validate_args=False), 1,
                           validate_args=False)

    # ----------------------------------------------------------------- filtering real sequences
    def _previous_actions(self, batch: dict[str, Tensor]) -> Tensor:
        """One-hot ``a_{t-1}`` per row ``[T, B, N, A]`` (zero in the first row; ``_observe`` zeroes it at resets)."""
        return _shift_one_row(F.one_hot(batch["action"].long(), self.n_actions).to(batch["obs"].dtype))

    def filter(self, batch: dict[str, Tensor]) -> tuple[RSSMState, Tensor]:
        """The posterior filter over a contracts.md section 3 batch from the zero state: posterior states
        ``[T, B, N, ...]`` and their logits ``[T, B, N, C, K]``, without the heads and losses of ``loss``
        (imagination start states need only this)."""
        obs, is_first = batch["obs"], batch["is_first"].to(batch["obs"].dtype)
        prev_action, embed = self._previous_actions(batch), self.encoder(obs)
        state = self.initial_state(obs.shape[1:3])
        posts, post_logits = [], []
        for t in range(obs.shape[0]):
            state, logits = self._observe(state, prev_action[t], embed[t], is_first[t], None)
            posts.append(state)
            post_logits.append(logits)
        return RSSMState.stack(posts), torch.stack(post_logits)

    def filtered(self, batch: dict[str, Tensor]) -> FilterOutput:
        """``filter`` plus the prior at each ``h_t`` and the heads' targets and loss masks: ``loss`` without the
        heads on the posterior and the losses (R_m's candidate labels need only this)."""
        cfg = self.cfg
        obs, is_first = batch["obs"], batch["is_first"].to(batch["obs"].dtype)
        n_steps, batch_size, n_agents = obs.shape[:3]
        posterior, posterior_logits = self.filter(batch)
        ones = torch.ones(n_steps, batch_size, n_agents, dtype=obs.dtype, device=obs.device)
        not_first = (1.0 - is_first)[..., None] * ones
        prev_valid = torch.cat([torch.zeros_like(ones[:1]), 1.0 - batch["is_last"].to(obs.dtype)[:-1, ..., None]
                                * ones[:-1]]) * not_first
        masks = {
            "kl": ones,
            "reconstruction": batch["alive"].to(obs.dtype) if cfg.mask_dead_reconstruction else ones,
            "reward": not_first,
            "continue": ones,
            "av_action": ones,
            "mi": prev_valid,
        }
        targets = LossTargets(obs=obs, reward=batch["reward"].to(obs.dtype)[..., None].expand_as(ones),
                              continues=(1.0 - batch["is_terminal"].to(obs.dtype))[..., None].expand_as(ones),
                              action_mask=batch["action_mask"].to(obs.dtype),
                              prev_action=_shift_one_row(batch["action"].long()))  # 0 in row 0, masked
        return FilterOutput(posterior, posterior_logits, self.prior_logits(posterior.deter), targets, masks,
                            self.obs_dim, cfg.reconstruction_reduction)

    # ----------------------------------------------------------------- training loss
    def loss(self, batch: dict[str, Tensor]) -> WorldModelOutput:
        """One-step prediction loss of Algorithm 1 line 4 on a contracts.md section 3 batch.

        Terms (all per step and agent, then masked mean; reference ``optim/loss.py:model_loss``):
        ``reconstruction`` Huber over obs dims (sum or mean; optionally masked for dead agents); ``reward`` Huber
        to the team reward, masked where ``is_first``; ``continue`` NLL of ``1 - is_terminal``; ``av_action``
        NLL of the availability mask; ``mi`` cross-entropy of the agent's own ``a_{t-1}`` from the decoder
        features, masked where there is no previous action (first window row, ``is_first``, after ``is_last``);
        ``kl`` balanced ``a KL(sg q || p) + (1 - a) KL(q || sg p)`` reduced over categoricals (mean or sum).
        """
        cfg, filtered = self.cfg, self.filtered(batch)
        post_logits, prior_logits, masks = filtered.posterior_logits, filtered.prior_logits, filtered.masks
        kl_post = _categorical_kl(post_logits, prior_logits.detach())
        kl_prior = _categorical_kl(post_logits.detach(), prior_logits)
        reduce_kl = torch.mean if cfg.kl_reduction == "mean" else torch.sum
        per_step = {"kl": reduce_kl(cfg.kl_balance * kl_prior + (1.0 - cfg.kl_balance) * kl_post, dim=-1),
                    **self.head_errors(filtered.posterior.features(), filtered.targets)}
        per_step = {k: v * masks[k] for k, v in per_step.items()}
        terms = {k: per_step[k].sum() / masks[k].sum().clamp_min(1.0) for k in LOSS_TERMS}
        total = sum(cfg.loss_scales[k] * terms[k] for k in LOSS_TERMS)
        return WorldModelOutput(**{f.name: getattr(filtered, f.name) for f in fields(FilterOutput)},
                                total=total, terms=terms, per_step=per_step)

    def head_errors(self, features: Tensor, targets: LossTargets,
                    terms: Sequence[str] = HEAD_TERMS) -> dict[str, Tensor]:
        """Per-step, per-agent errors of the heads named in ``terms`` on ``features [..., T, B, N, F]`` against
        ``targets`` (unmasked; leading dims, e.g. R_m's candidates, broadcast): Huber reconstruction over obs dims
        (sum or mean), Huber reward, continue and av-action NLLs, MI cross-entropy of the previous action."""
        errors: dict[str, Tensor] = {}
        if "reconstruction" in terms or "mi" in terms:
            obs_pred, dec_hidden = self.decoder(features)
        if "reconstruction" in terms:
            recon = F.huber_loss(obs_pred, targets.obs.expand_as(obs_pred), reduction="none")
            errors["reconstruction"] = recon.sum(-1) if self.cfg.reconstruction_reduction == "sum" else recon.mean(-1)
        if "reward" in terms:
            errors["reward"] = F.huber_loss(self.reward(features), targets.reward.expand(features.shape[:-1]),
                                            reduction="none")
        if "continue" in terms:
            errors["continue"] = -self.continue_dist(features).log_prob(targets.continues.expand(features.shape[:-1]))
        if "av_action" in terms:
            mask = targets.action_mask.expand(*features.shape[:-1], self.n_actions)
            errors["av_action"] = -self.av_action_dist(features).log_prob(mask)
        if "mi" in terms:
            mi_logits = self.mi_head(dec_hidden)
            prev_action = targets.prev_action.expand(mi_logits.shape[:-1])
            errors["mi"] = F.cross_entropy(mi_logits.flatten(0, -2), prev_action.flatten(),
                                           reduction="none").view_as(prev_action)
        return errors
