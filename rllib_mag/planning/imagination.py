"""Imagined rollouts with MAG's random-shooting planner (Algorithm 1 lines 6-15; paper "Planning to Predict";
reference MAG ``networks/dreamer/rnns.py:{rollout_policy, MPCPredict}``, ``agent/optim/loss.py:critic_rollout``).

From M start states, every one of k steps: the actor samples the joint action (line 9), then the models draw L
candidate next latents for the same deterministic ``h_{t+1}`` (the GRU/attention step is computed once: candidates
differ only in the sampled ``z_{t+1}``), roll each forward H steps under the current policy (line 10), score it by
the (optionally discounted) summed predicted model error ``R_m`` (line 11) and keep the first prediction of the
best candidate (line 12). All L x M x N agent states advance in one batched call per lookahead step, on latent
class indices rather than one-hots (``lookahead_heads``). Each step (``imagined_step``) is a pure function of its
tensors, its randomness drawn up front (``StepNoise``), so it can run under ``torch.compile``
(``rllib_mag.compilation.Compiled``) and draw the eager step's samples.

``selection="per_start"`` (default, the paper) takes the argmin per start state; ``"global"`` reproduces the
released code, which takes one argmin of the score averaged over the whole batch (near-random for M=720).
With ``mode="mamba"`` or ``planning_candidates_L=1`` the rollout is MAMBA's imagination, sample for sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from rllib_mag.models.actor_critic import Actor, AttentionCritic, mask_logits
from rllib_mag.models.layers import (categorical_from_uniform, eval_mode, latent_columns, one_hot, one_hot_linear,
                                     softmax_weights)
from rllib_mag.models.world_model import RSSMState, WorldModel
from rllib_mag.planning.model_reward import ModelRewardPredictor
from rllib_mag.validation import check_choice, check_int, check_open_unit, check_unit

MODES = ("mag", "mamba")
SELECTIONS = ("per_start", "global")
AVAILABILITY_MODES = ("sample", "threshold")


@dataclass(frozen=True)
class PlanningConfig:
    """Imagination and planner settings (reference values: k=15, H=6, L=4, no score discount). The field names
    are `MAGConfig`'s keys, which builds this from its own values of the same names.

    Attributes:
        rollout_length_k: k imagined steps per start state.
        planning_horizon_H: H lookahead steps scored per candidate (the first is the candidate itself).
        planning_candidates_L: L candidate latents per step.
        planning_selection: ``"per_start"`` (paper) or ``"global"`` (released code) argmin.
        mode: ``"mag"`` plans; ``"mamba"`` gives MAMBA's imagination (one prior sample, no lookahead).
        planning_discount: weight ``planning_discount ** i`` of the i-th lookahead error (reference option: 0.995).
        imagined_availability: imagined action masks are a Bernoulli ``"sample"`` of the av head (reference) or
            ``"threshold"`` at ``availability_threshold``.
    """

    rollout_length_k: int = 15
    planning_horizon_H: int = 6
    planning_candidates_L: int = 4
    planning_selection: str = "per_start"
    mode: str = "mag"
    planning_discount: float = 1.0
    imagined_availability: str = "sample"
    availability_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rollout_length_k", "planning_horizon_H", "planning_candidates_L"):
            check_int(name, getattr(self, name), 1)
        if self.planning_horizon_H > self.rollout_length_k:
            raise ValueError(f"planning_horizon_H={self.planning_horizon_H} is invalid: must be <= rollout_length_k="
                             f"{self.rollout_length_k} (H <= k, Algorithm 1)")
        for name, options in (("mode", MODES), ("planning_selection", SELECTIONS),
                              ("imagined_availability", AVAILABILITY_MODES)):
            check_choice(name, getattr(self, name), options)
        check_unit("planning_discount", self.planning_discount)
        check_open_unit("availability_threshold", self.availability_threshold)

    @property
    def n_candidates(self) -> int:
        """Latents drawn per step: L when planning, else 1 (MAMBA)."""
        return self.planning_candidates_L if self.mode == "mag" else 1


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
        """Finite scalar summaries for logging, with the accumulated R_m error after each step (the paper's Fig. 3
        quantity, ``accumulated_error_step_NN``); without planning there are no candidate scores."""
        metrics = {"chosen_error": self.chosen_error.mean().item(),
                   "mean_candidate_error": self.mean_candidate_error.mean().item(),
                   "accumulated_error": self.accumulated_error[-1].item(),
                   "imagined_reward": self.reward.mean().item(),
                   **{f"accumulated_error_step_{step:02d}": error
                      for step, error in enumerate(self.accumulated_error.tolist(), start=1)}}
        return {key: value for key, value in metrics.items() if math.isfinite(value)}


class ActionNoise(NamedTuple):
    """Uniforms for ``act`` on states ``[..., N]``: one per action for the Bernoulli availability mask
    ``[..., N, A]`` and one per agent for the action draw ``[..., N, 1]``."""

    availability: Tensor
    action: Tensor

    @staticmethod
    def draw(batch_shape: Sequence[int], n_actions: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> ActionNoise:
        """Fresh uniforms for states of ``batch_shape`` (agent axis included) from ``generator``."""
        return ActionNoise(torch.rand(*batch_shape, n_actions, generator=generator, device=device),
                           torch.rand(*batch_shape, 1, generator=generator, device=device))


class StepNoise(NamedTuple):
    """Every uniform one imagined step consumes, drawn before the step so that the step is a pure tensor function
    (``torch.compile`` takes no ``torch.Generator``; eager and compiled steps see the same draws).

    Attributes:
        action: ``act`` at ``s_t`` ``[M, N, ...]`` (line 9).
        candidates: the L candidate latents of ``z_{t+1}``, ``[L, M, N, C, 1]``.
        lookahead: ``act`` at each further lookahead step, ``[H-1, L*M, N, ...]`` (line 10; None without planning).
        lookahead_latents: the latents of those steps, ``[H-1, L*M, N, C, 1]`` (None without planning).
    """

    action: ActionNoise
    candidates: Tensor
    lookahead: ActionNoise | None
    lookahead_latents: Tensor | None

    @staticmethod
    def draw(world_model: WorldModel, state: RSSMState, cfg: PlanningConfig,
             generator: torch.Generator | None = None) -> StepNoise:
        batch, device = state.deter.shape[:-1], state.deter.device
        n_cand, n_latents = cfg.n_candidates, world_model.cfg.n_categoricals
        noise = StepNoise(ActionNoise.draw(batch, world_model.n_actions, generator, device),
                          torch.rand(n_cand, *batch, n_latents, 1, generator=generator, device=device), None, None)
        if n_cand == 1:
            return noise
        lookahead_batch = (cfg.planning_horizon_H - 1, n_cand * batch[0], *batch[1:])
        return noise._replace(
            lookahead=ActionNoise.draw(lookahead_batch, world_model.n_actions, generator, device),
            lookahead_latents=torch.rand(*lookahead_batch, n_latents, 1, generator=generator, device=device))


class PlanStep(NamedTuple):
    """Output of ``plan_step``: kept state, all candidate latents ``[L, M, N, C, K]``, their scores ``[L, M]`` and
    the chosen index ``[M]`` (scores/choice are None without planning)."""

    next_state: RSSMState
    candidates: Tensor
    scores: Tensor | None
    choice: Tensor | None


def draw_action(av_probs: Tensor, logits: Tensor, cfg: PlanningConfig,
                noise: ActionNoise) -> tuple[Tensor, Tensor, Tensor]:
    """Algorithm 1 line 9 given the av head's probabilities and the actor's raw logits ``[..., N, A]``: availability
    mask (a Bernoulli draw, or thresholded), masked logits and the sampled action. Returns ``(action [..., N],
    masked logits, mask)``."""
    if cfg.imagined_availability == "sample":
        mask = (noise.availability < av_probs).to(av_probs.dtype)
    else:
        mask = (av_probs > cfg.availability_threshold).to(av_probs.dtype)
    masked = mask_logits(logits, mask)
    return categorical_from_uniform(softmax_weights(masked), noise.action), masked, mask


def act(world_model: WorldModel, actor: Actor, features: Tensor, cfg: PlanningConfig,
        noise: ActionNoise) -> tuple[Tensor, Tensor, Tensor]:
    """Line 9 in the model on ``features [..., N, F]``: ``draw_action`` on the av head and the actor."""
    return draw_action(world_model.av_action_probs(features), actor.net(features), cfg, noise)


def lookahead_heads(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor, latent_index: Tensor,
                    deter: Tensor, with_policy: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """R_m's predicted error ``[B, N]`` (float32) at ``s = [z, h]`` and, ``with_policy``, the av head's
    probabilities and the actor's raw logits, from z's class indices ``[B, N, C]`` and ``h = deter``.

    The three networks read the same s, and z is one-hot: their first layers run as one ``one_hot_linear``
    (C weight columns gathered per agent, plus one GEMM on h) instead of three GEMMs over ``C*K + deter`` inputs
    (C*K is 80% of them at paper size)."""
    nets = (model_reward.net, world_model.av_action_head, actor.net) if with_policy else (model_reward.net,)
    firsts = [net[0] for net in nets]
    hidden = one_hot_linear(torch.cat([f.weight for f in firsts]), torch.cat([f.bias for f in firsts]),
                            latent_columns(latent_index, world_model.cfg.n_classes), deter)
    outs = [net[1:](part) for net, part in zip(nets, hidden.split([f.out_features for f in firsts], -1))]
    error = outs[0].squeeze(-1).float()
    return (error, torch.sigmoid(outs[1]), outs[2]) if with_policy else (error, None, None)


def candidate_scores(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor, deter: Tensor,
                     candidates: Tensor, cfg: PlanningConfig, noise: StepNoise) -> Tensor:
    """Algorithm 1 lines 10-11: roll each candidate ``(z, h = deter)``, z of class indices ``candidates[j]``
    ``[M, N, C]``, H-1 further steps under the current policy, all ``L*M`` joint states in one batch, and return
    ``sum_i planning_discount**i * mean_agents R_m(s_i)`` per candidate and start, ``[L, M]``. The lookahead works on
    latent indices (``lookahead_heads``, ``WorldModel.transition_from_indices``): no one-hot is built."""
    n_cand = candidates.shape[0]
    index, deter = candidates.flatten(0, 1), deter.expand(n_cand, *deter.shape).flatten(0, 1)
    score = torch.zeros(index.shape[0], device=index.device)
    for i in range(cfg.planning_horizon_H):
        policy = i < cfg.planning_horizon_H - 1  # the last state is scored, not acted in
        error, av_probs, logits = lookahead_heads(world_model, actor, model_reward, index, deter, policy)
        score = score + cfg.planning_discount ** i * error.mean(-1)
        if not policy:
            break
        step_noise = ActionNoise(noise.lookahead.availability[i], noise.lookahead.action[i])
        action = draw_action(av_probs, logits, cfg, step_noise)[0]
        deter = world_model.transition_from_indices(action, index, deter)
        index = categorical_from_uniform(softmax_weights(world_model.prior_logits(deter)), noise.lookahead_latents[i])
    return score.view(n_cand, -1)


def select_candidates(scores: Tensor, selection: str) -> Tensor:
    """Algorithm 1 line 12: index ``[M]`` of the lowest-error candidate per start (``"per_start"``), or the one
    candidate with the lowest batch-mean score for every start (``"global"``, released code)."""
    if selection == "per_start":
        return scores.argmin(0)
    return scores.mean(1).argmin().expand(scores.shape[1])


def plan_step(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor | None, state: RSSMState,
              action_onehot: Tensor, cfg: PlanningConfig, noise: StepNoise) -> PlanStep:
    """Predict ``s_{t+1}`` for all M starts (Algorithm 1 lines 10-12): one deterministic transition, L prior
    samples of ``z_{t+1}``, lookahead scoring and selection when L > 1."""
    deter = world_model.transition(state, action_onehot)
    logits = world_model.prior_logits(deter)
    index = categorical_from_uniform(softmax_weights(logits.expand(cfg.n_candidates, *logits.shape)),
                                     noise.candidates)
    candidates = one_hot(index, logits.shape[-1], logits.dtype)
    if cfg.n_candidates == 1:
        return PlanStep(RSSMState(candidates[0], deter), candidates, None, None)
    scores = candidate_scores(world_model, actor, model_reward, deter, index, cfg, noise)
    choice = select_candidates(scores, cfg.planning_selection)
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


def imagined_step(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor | None,
                  state: RSSMState, cfg: PlanningConfig, noise: StepNoise) -> ImaginedStep:
    """Algorithm 1 lines 9-12 for every start: act at ``s_t``, then plan ``s_{t+1}``. A pure function of its
    tensors (``noise`` holds the randomness), which is what ``StepRunner`` compiles."""
    features = state.features()
    action, logits, mask = act(world_model, actor, features, cfg, noise.action)
    plan = plan_step(world_model, actor, model_reward, state,
                     one_hot(action, world_model.n_actions, features.dtype), cfg, noise)
    return ImaginedStep(features, action, logits, mask, plan)


@contextmanager
def planning_mode(*networks: nn.Module | None) -> Iterator[None]:
    """Every network in eval mode (no dropout: all candidates share ``h_{t+1}``) under ``torch.inference_mode``."""
    with eval_mode(*(m for m in networks if m is not None)), torch.inference_mode():
        yield


def imagination_steps(world_model: WorldModel, actor: Actor, model_reward: ModelRewardPredictor | None,
                      start_state: RSSMState, cfg: PlanningConfig, generator: torch.Generator | None = None,
                      step: Callable[..., ImaginedStep] = imagined_step) -> Iterator[ImaginedStep]:
    """Algorithm 1 lines 8-14 from ``start_state [M, N, ...]``, one ``ImaginedStep`` per step; call it under
    ``planning_mode``. The networks compute in the dtype of the world model's parameters; ``step`` is
    ``imagined_step`` or a compiled ``StepRunner`` of it."""
    if model_reward is None and cfg.n_candidates > 1:
        raise ValueError("planning with candidates > 1 needs a model_reward (R_m) network")
    dtype = next(world_model.parameters()).dtype
    state = start_state.map(lambda x: x.to(dtype))
    for _ in range(cfg.rollout_length_k):
        noise = StepNoise.draw(world_model, state, cfg, generator)
        imagined = step(world_model, actor, model_reward, state, cfg, noise)
        yield imagined
        state = imagined.plan.next_state


def imagine(world_model: WorldModel, actor: Actor, critic: AttentionCritic,
            model_reward: ModelRewardPredictor | None, start_state: RSSMState, cfg: PlanningConfig,
            generator: torch.Generator | None = None,
            step: Callable[..., ImaginedStep] = imagined_step) -> SyntheticBatch:
    """Algorithm 1 lines 6-15 from ``start_state [M, N, ...]`` under ``planning_mode``. Outputs are ordinary
    float32 tensors without grad.

    The networks compute in the dtype of the world model's parameters: cast them to ``torch.bfloat16`` for
    about 2-3x faster planning on CPUs and GPUs with bf16 matrix units (sampling and scores stay float32).
    ``step``: ``imagined_step`` (eager) or a ``StepRunner`` (compiled).
    """
    n_starts, n_agents = start_state.deter.shape[:2]
    k, n_actions, device = cfg.rollout_length_k, world_model.n_actions, start_state.deter.device
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
        steps = imagination_steps(world_model, actor, model_reward, start_state, cfg, generator, step)
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
