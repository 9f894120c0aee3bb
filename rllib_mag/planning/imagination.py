"""Imagined rollouts with MAG's random-shooting planner (Algorithm 1 lines 6-15; paper "Planning to Predict";
reference MAG ``networks/dreamer/rnns.py:{rollout_policy, MPCPredict}``, ``agent/optim/loss.py:critic_rollout``).

From M start states, every one of k steps: the actor samples the joint action (line 9), then the models draw L
candidate next latents for the same deterministic ``h_{t+1}`` (the GRU/attention step is computed once: candidates
differ only in the sampled ``z_{t+1}``), roll each forward H steps under the current policy (line 10), score it by
the (optionally discounted) summed predicted model error ``R_m`` (line 11) and keep the first prediction of the
best candidate (line 12). All L x M x N agent states advance in one batched call per lookahead step.

``selection="per_start"`` (default, the paper) takes the argmin per start state; ``"global"`` reproduces the
released code, which takes one argmin of the score averaged over the whole batch (near-random for M=720).
With ``enabled=False`` or ``candidates=1`` the rollout is MAMBA's imagination, sample for sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rllib_mag.models.actor_critic import Actor, AttentionCritic
from rllib_mag.models.layers import eval_mode, sample_categorical
from rllib_mag.models.world_model import RSSMState, WorldModel
from rllib_mag.planning.model_reward import ModelRewardPredictor

SELECTIONS = ("per_start", "global")
AVAILABILITY_MODES = ("sample", "threshold")


@dataclass(frozen=True)
class PlanningConfig:
    """Imagination and planner settings (reference values: k=15, H=6, L=4, no score discount).

    Attributes:
        rollout_length: k imagined steps per start state.
        horizon: H lookahead steps scored per candidate (the first is the candidate itself).
        candidates: L candidate latents per step.
        selection: ``"per_start"`` (paper) or ``"global"`` (released code) argmin.
        enabled: ``False`` gives MAMBA's imagination (one prior sample, no lookahead).
        score_discount: weight ``score_discount ** i`` of the i-th lookahead error (reference option: 0.995).
        availability: imagined action masks are a Bernoulli ``"sample"`` of the av head (reference) or
            ``"threshold"`` at ``availability_threshold``.
    """

    rollout_length: int = 15
    horizon: int = 6
    candidates: int = 4
    selection: str = "per_start"
    enabled: bool = True
    score_discount: float = 1.0
    availability: str = "sample"
    availability_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rollout_length", "horizon", "candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PlanningConfig.{name} must be a positive int, got {value!r}")
        if self.horizon > self.rollout_length:
            raise ValueError(f"PlanningConfig.horizon ({self.horizon}) must be <= rollout_length "
                             f"({self.rollout_length}) (Algorithm 1: H <= k)")
        if self.selection not in SELECTIONS:
            raise ValueError(f"PlanningConfig.selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.availability not in AVAILABILITY_MODES:
            raise ValueError(f"PlanningConfig.availability must be one of {AVAILABILITY_MODES}, "
                             f"got {self.availability!r}")
        if not 0.0 < self.score_discount <= 1.0:
            raise ValueError(f"PlanningConfig.score_discount must be in (0, 1], got {self.score_discount}")
        if not 0.0 < self.availability_threshold < 1.0:
            raise ValueError(f"PlanningConfig.availability_threshold must be in (0, 1), "
                             f"got {self.availability_threshold}")

    @property
    def n_candidates(self) -> int:
        """Latents drawn per step: L when planning, else 1 (MAMBA)."""
        return self.candidates if self.enabled else 1


@dataclass
class SyntheticBatch:
    """Imagined data (contracts.md section 5), ``[M, k, N, ...]``.

    ``features/actions/logp/logits/action_mask`` describe the state ``s_t`` and the action taken there;
    ``reward``/``discount`` (agent means of the reward head and continue probability) belong to ``s_{t+1}``;
    ``values`` is the critic on ``s_0..s_k``. Planner statistics ``[k]``: ``chosen_error`` / ``mean_candidate_error``
    are the chosen / average candidate lookahead scores (NaN without planning); ``step_error`` is the mean R_m of
    the kept ``s_{t+1}`` and ``accumulated_error`` its running sum (the paper's Fig. 3 quantity; NaN without R_m).
    """

    features: Tensor
    actions: Tensor
    logp: Tensor
    logits: Tensor
    action_mask: Tensor
    reward: Tensor
    discount: Tensor
    values: Tensor
    chosen_error: Tensor
    mean_candidate_error: Tensor
    step_error: Tensor
    accumulated_error: Tensor

    #: Fields with one row per start state (``[M, ...]``); the others are per-step planner statistics ``[k]``.
    PER_START: ClassVar[tuple[str, ...]] = ("features", "actions", "logp", "logits", "action_mask", "reward",
                                            "discount", "values")

    def to(self, device: torch.device | str) -> SyntheticBatch:
        return SyntheticBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def split(self, parts: int) -> list[SyntheticBatch]:
        """``parts`` equal shards along M (one per learner); the planner statistics are shared."""
        num_starts = self.actions.shape[0]
        if num_starts % parts:
            raise ValueError(f"cannot split {num_starts} imagined rollouts into {parts} equal shards")
        chunks = {name: getattr(self, name).chunk(parts) for name in self.PER_START}
        return [replace(self, **{name: chunks[name][i] for name in self.PER_START}) for i in range(parts)]

    def as_flat(self) -> dict[str, Tensor]:
        """Per-sample tensors with ``[M, k]`` merged: ``[M*k, N, ...]`` (joint samples for PPO minibatches)."""
        names = ("features", "actions", "logp", "logits", "action_mask")
        return {name: getattr(self, name).flatten(0, 1) for name in names}

    def planner_metrics(self) -> dict[str, float]:
        """Scalar summaries for logging."""
        return {"chosen_error": self.chosen_error.mean().item(),
                "mean_candidate_error": self.mean_candidate_error.mean().item(),
                "accumulated_error": self.accumulated_error[-1].item(),
                "imagined_reward": self.reward.mean().item()}


class PlanStep(NamedTuple):
    """Output of ``plan_step``: kept state, all candidate latents ``[L, M, N, C, K]``, their scores ``[L, M]`` and
    the chosen index ``[M]`` (scores/choice are None without planning)."""

    next_state: RSSMState
    candidates: Tensor
    scores: Tensor | None
    choice: Tensor | None


def act(world_model: WorldModel, actor: Actor, features: Tensor, cfg: PlanningConfig,
        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Algorithm 1 line 9 in the model: availability mask from the av head (sampled or thresholded), masked actor
    logits, sampled action. Returns ``(action [..., N], masked logits [..., N, A], mask [..., N, A])``."""
    av_probs = world_model.av_action_dist(features).mean
    if cfg.availability == "sample":
        mask = torch.bernoulli(av_probs, generator=generator)
    else:
        mask = (av_probs > cfg.availability_threshold).to(av_probs.dtype)
    logits = actor.masked_logits(features, mask)
    return sample_categorical(logits.softmax(-1), generator), logits, mask


def candidate_scores(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor, deter: Tensor,
                     candidates: Tensor, cfg: PlanningConfig, generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 1 lines 10-11: roll each candidate ``(z = candidates[j], h = deter)`` H-1 further steps under the
    current policy, all ``L*M`` joint states in one batch, and return ``sum_i score_discount**i * mean_agents
    R_m(s_i)`` per candidate and start, ``[L, M]``."""
    n_cand = candidates.shape[0]
    state = RSSMState(candidates.flatten(0, 1), deter.expand(n_cand, *deter.shape).flatten(0, 1))
    feat = state.features()
    score = model_reward(feat).float().mean(-1)
    for i in range(1, cfg.horizon):
        action = act(world_model, actor, feat, cfg, generator)[0]
        state = world_model.imagine_step(state, F.one_hot(action, world_model.n_actions).to(feat.dtype), generator)
        feat = state.features()
        score = score + cfg.score_discount ** i * model_reward(feat).float().mean(-1)
    return score.view(n_cand, -1)


def select_candidates(scores: Tensor, selection: str) -> Tensor:
    """Algorithm 1 line 12: index ``[M]`` of the lowest-error candidate per start (``"per_start"``), or the one
    candidate with the lowest batch-mean score for every start (``"global"``, released code)."""
    if selection == "per_start":
        return scores.argmin(0)
    return scores.mean(1).argmin().expand(scores.shape[1])


def plan_step(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor | None, state: RSSMState,
              action_onehot: Tensor, cfg: PlanningConfig, generator: torch.Generator | None = None) -> PlanStep:
    """Predict ``s_{t+1}`` for all M starts (Algorithm 1 lines 10-12): one deterministic transition, L prior
    samples of ``z_{t+1}`` drawn in one call, lookahead scoring and selection when L > 1."""
    deter = world_model.transition(state, action_onehot)
    logits = world_model.prior_logits(deter)
    candidates = world_model.sample_latent(logits.expand(cfg.n_candidates, *logits.shape), generator)
    if cfg.n_candidates == 1:
        return PlanStep(RSSMState(candidates[0], deter), candidates, None, None)
    scores = candidate_scores(world_model, actor, model_reward, deter, candidates, cfg, generator)
    choice = select_candidates(scores, cfg.selection)
    kept = candidates[choice, torch.arange(candidates.shape[1], device=choice.device)]
    return PlanStep(RSSMState(kept, deter), candidates, scores, choice)


class ImaginedStep(NamedTuple):
    """One imagined step ``t``: features of ``s_t`` (networks' dtype), the action taken there (line 9) with its masked
    logits and imagined availability mask, and the planner's prediction of ``s_{t+1}`` (``PlanStep``)."""

    features: Tensor
    action: Tensor
    logits: Tensor
    mask: Tensor
    plan: PlanStep


@contextmanager
def planning_mode(*networks: nn.Module | None) -> Iterator[None]:
    """Every network in eval mode (no dropout: all candidates share ``h_{t+1}``) under ``torch.inference_mode``."""
    with eval_mode(*(m for m in networks if m is not None)), torch.inference_mode():
        yield


def imagination_steps(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor | None,
                      start_state: RSSMState, cfg: PlanningConfig,
                      generator: torch.Generator | None = None) -> Iterator[ImaginedStep]:
    """Algorithm 1 lines 8-14 from ``start_state [M, N, ...]``, one ``ImaginedStep`` per step; call it under
    ``planning_mode``. The networks compute in the dtype of the world model's parameters."""
    if model_reward is None and cfg.n_candidates > 1:
        raise ValueError("planning with candidates > 1 needs a model_reward (R_m) network")
    dtype = next(world_model.parameters()).dtype
    state = start_state.map(lambda x: x.to(dtype))
    for _ in range(cfg.rollout_length):
        features = state.features()
        action, logits, mask = act(world_model, actor, features, cfg, generator)
        step = plan_step(world_model, actor, model_reward, state,
                         F.one_hot(action, world_model.n_actions).to(dtype), cfg, generator)
        yield ImaginedStep(features, action, logits, mask, step)
        state = step.next_state


def imagine(world_model: WorldModel, actor: Actor, critic: AttentionCritic,
            model_reward: ModelRewardPredictor | None, start_state: RSSMState, cfg: PlanningConfig,
            generator: torch.Generator | None = None) -> SyntheticBatch:
    """Algorithm 1 lines 6-15 from ``start_state [M, N, ...]`` under ``planning_mode``. Outputs are ordinary
    float32 tensors without grad.

    The networks compute in the dtype of the world model's parameters: cast them to ``torch.bfloat16`` for
    about 2-3x faster planning on CPUs and GPUs with bf16 matrix units (sampling and scores stay float32).
    """
    n_starts, n_agents = start_state.deter.shape[:2]
    k, n_actions, device = cfg.rollout_length, world_model.n_actions, start_state.deter.device
    nan = torch.full((k,), float("nan"), device=device)
    with torch.no_grad():  # allocated outside inference mode so that PPO can use them with autograd
        feats = torch.empty(n_starts, k + 1, n_agents, world_model.cfg.feature_dim, device=device)
        actions = torch.empty(n_starts, k, n_agents, dtype=torch.long, device=device)
        logits_out = torch.empty(n_starts, k, n_agents, n_actions, device=device)
        masks = torch.empty_like(logits_out)
        reward, discount = torch.empty(n_starts, k, device=device), torch.empty(n_starts, k, device=device)
        values = torch.empty(n_starts, k + 1, n_agents, device=device)
        chosen, mean_candidate, step_error = nan.clone(), nan.clone(), nan.clone()
    with planning_mode(world_model, actor, critic, model_reward):
        steps = imagination_steps(world_model, actor, model_reward, start_state, cfg, generator)
        for t, step in enumerate(steps):
            feats[:, t], actions[:, t], logits_out[:, t], masks[:, t] = step[:4]
            if step.plan.scores is not None:
                chosen[t] = step.plan.scores.gather(0, step.plan.choice[None]).mean()
                mean_candidate[t] = step.plan.scores.mean()
        feats[:, k] = step.plan.next_state.features()  # s_k: the next step would build it first
        dtype = next(world_model.parameters()).dtype
        next_feats = feats[:, 1:].to(dtype)
        reward.copy_(world_model.reward(next_feats).mean(-1))
        discount.copy_(world_model.continue_dist(next_feats).probs.mean(-1))
        values.copy_(critic(feats.flatten(0, 1).to(dtype)).view(n_starts, k + 1, n_agents))
        if model_reward is not None:
            step_error.copy_(model_reward(next_feats).float().mean((0, 2)))
    logp = logits_out.log_softmax(-1).gather(-1, actions[..., None]).squeeze(-1)
    return SyntheticBatch(feats[:, :k], actions, logp, logits_out, masks, reward, discount, values, chosen,
                          mean_candidate, step_error, step_error.cumsum(0))
