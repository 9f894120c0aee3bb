"""PPO on imagined data (Algorithm 1 lines 16-18; reference MAMBA/MAG ``agent/learners/DreamerLearner.py:
train_agent`` and ``agent/optim/loss.py:{actor_loss, value_loss}``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rllib_mag.learning.data_parallel import DataParallel
from rllib_mag.learning.gradient_step import gradient_step
from rllib_mag.learning.returns import lambda_returns
from rllib_mag.models.actor_critic import Actor, AttentionCritic
from rllib_mag.planning.imagination import SyntheticBatch
from rllib_mag.validation import check_bool, check_int, check_non_negative, check_positive, check_unit


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings of the released code (SMAC): 5 epochs of minibatches of 2000 joint samples, clip 0.2, entropy
    1e-3 annealed by x0.99998 per minibatch, grad clip 100, advantages normalised per batch, gamma .99,
    lambda .95, Adam 5e-4 (actor weight decay 1e-5)."""

    ppo_epochs: int = 5
    ppo_minibatch_size: int = 2000
    clip_param: float = 0.2
    entropy_coeff: float = 1e-3
    entropy_annealing: float = 0.99998
    policy_grad_clip: float = 100.0
    normalize_advantages: bool = True
    gamma: float = 0.99
    lambda_: float = 0.95
    actor_lr: float = 5e-4
    critic_lr: float = 5e-4
    actor_weight_decay: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("ppo_epochs", "ppo_minibatch_size"):
            check_int(name, getattr(self, name), 1)
        for name in ("clip_param", "policy_grad_clip", "actor_lr", "critic_lr"):
            check_positive(name, getattr(self, name))
        for name in ("gamma", "lambda_", "entropy_annealing"):
            check_unit(name, getattr(self, name))
        for name in ("entropy_coeff", "actor_weight_decay"):
            check_non_negative(name, getattr(self, name))
        check_bool("normalize_advantages", self.normalize_advantages)


def make_optimizers(actor: Actor, critic: AttentionCritic,
                    cfg: PPOConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam optimisers of the reference: actor (lr, weight decay) and critic."""
    return (torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.actor_weight_decay),
            torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr))


def clipped_surrogate_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor,
                           clip: float) -> tuple[Tensor, Tensor]:
    """PPO-clip actor loss ``-mean(min(rho A, clip(rho, 1 - clip, 1 + clip) A))`` and the ratio ``rho``."""
    ratio = (logp - old_logp).exp()
    return -torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages).mean(), ratio


def actor_objective(actor: Actor, features: Tensor, action_mask: Tensor, actions: Tensor, old_logp: Tensor,
                    advantages: Tensor, clip: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PPO-clip loss of one minibatch and the policy's entropy, ratio and log-probs, from ``log_softmax`` of the
    masked logits as imagination stores them. Where every action is masked the
    policy is uniform (log-prob ``-log A``); ``Categorical(logits=...)`` would give 0 there (``-1e10`` minus its
    logsumexp rounds to 0 in float32) and so a ratio of A against the stored log-prob."""
    log_probs = actor.masked_logits(features, action_mask).log_softmax(-1)
    logp = log_probs.gather(-1, actions[..., None]).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    policy_loss, ratio = clipped_surrogate_loss(logp, old_logp, advantages, clip)
    return policy_loss, entropy, ratio, logp


def critic_objective(critic: AttentionCritic, features: Tensor, returns: Tensor) -> Tensor:
    """Value loss ``0.5 (G - V)^2`` of one minibatch."""
    return 0.5 * (returns - critic(features)).pow(2).mean()


def behaviour_log_probs(actor: Actor, batch: SyntheticBatch) -> Tensor:
    """``log pi(a_t | s_t)`` ``[M, k, N]`` of the stored actions under ``actor`` with the stored masks, in the actor's
    precision and as ``ppo_update`` computes them: PPO's old log-probs when imagination ran in another precision
    (bfloat16 planning), so that the first step's ratio is 1."""
    with torch.no_grad():
        log_probs = actor.masked_logits(batch.features, batch.action_mask).log_softmax(-1)
        return log_probs.gather(-1, batch.actions[..., None]).squeeze(-1)


def normalize_advantages(advantages: Tensor, data_parallel: DataParallel | None = None) -> Tensor:
    """``(A - mean) / (std + 1e-4)`` with the mean and (unbiased) std over all learners' samples."""
    flat = advantages.double().flatten()  # float64: the sum-of-squares form loses no precision
    moments = torch.stack([flat.sum(), flat.square().sum(), flat.new_tensor(float(flat.numel()))])
    if data_parallel is not None:
        moments = data_parallel.sum(moments)
    total, square_total, count = moments
    mean = total / count
    std = ((square_total - count * mean.square()).clamp(min=0.0) / (count - 1).clamp(min=1.0)).sqrt()
    return (advantages - mean.to(advantages.dtype)) / (std.to(advantages.dtype) + 1e-4)


def ppo_update(actor: Actor, critic: AttentionCritic, actor_opt: torch.optim.Optimizer,
               critic_opt: torch.optim.Optimizer, batch: SyntheticBatch, cfg: PPOConfig,
               generator: torch.Generator | None = None, entropy_coeff: float | None = None,
               data_parallel: DataParallel | None = None) -> dict[str, float]:
    """PPO epochs over ``batch`` (joint samples ``[M*k]``, all agents together for the attention critic).

    Advantages ``A = G^lambda - V(s_t)`` are computed once (per agent) and normalised ``(A - mean) / (std + 1e-4)``.
    Actor loss ``-min(rho A, clip(rho, 1-eps, 1+eps) A) - c_ent H[pi]`` with the stored (sampled) action masks;
    critic loss ``0.5 (G - V)^2``. ``entropy_coeff`` (default ``cfg.entropy_coeff``) is multiplied by
    ``cfg.entropy_annealing`` after every minibatch; pass the returned ``"entropy_coeff"`` to the next call.
    With ``data_parallel`` each learner passes an equal shard of the batch and takes minibatches of
    ``cfg.ppo_minibatch_size / world_size``; advantages are normalised over all shards and gradients averaged, so the
    learners take the steps one learner would take on the whole batch.
    Returns the mean of each metric over minibatches, ``initial_ratio_deviation``: mean ``|rho - 1|`` of the
    first minibatch (0 when ``batch.logp`` is the actor's own, see ``behaviour_log_probs``), and
    ``num_nonfinite_skipped``: actor and critic steps skipped for a non-finite loss or gradient.
    """
    coef = cfg.entropy_coeff if entropy_coeff is None else entropy_coeff
    with torch.no_grad():
        returns = lambda_returns(batch.reward, batch.discount, batch.values, cfg.gamma, cfg.lambda_)
        advantages = returns - batch.values[:, :-1]
        if cfg.normalize_advantages:
            advantages = normalize_advantages(advantages, data_parallel)
        flat = batch.as_flat()
        flat["returns"], flat["advantages"] = returns.flatten(0, 1), advantages.flatten(0, 1)
    n_samples = flat["features"].shape[0]
    minibatch_size = cfg.ppo_minibatch_size // (data_parallel.world_size if data_parallel is not None else 1)
    sums = dict.fromkeys(("actor_loss", "critic_loss", "entropy", "clip_fraction", "approx_kl"), 0.0)
    num_skipped = 0  # actor and critic steps skipped for a non-finite loss or gradient (`gradient_step`)
    n_minibatches, initial_ratio_deviation = 0, 0.0
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(n_samples, generator=generator).to(flat["features"].device)
        for idx in order.split(minibatch_size):
            mb = {k: v[idx] for k, v in flat.items()}
            policy_loss, entropy, ratio, logp = actor_objective(actor, mb["features"], mb["action_mask"], mb["actions"],
                                                                mb["logp"], mb["advantages"], cfg.clip_param)
            if n_minibatches == 0:  # before any update: how far the behaviour log-probs are from the actor's
                initial_ratio_deviation = (ratio.detach() - 1.0).abs().mean().item()
            _, actor_stepped = gradient_step(policy_loss - coef * entropy, actor.parameters(), actor_opt,
                                             cfg.policy_grad_clip, data_parallel)
            critic_loss = critic_objective(critic, mb["features"], mb["returns"])
            _, critic_stepped = gradient_step(critic_loss, critic.parameters(), critic_opt, cfg.policy_grad_clip,
                                              data_parallel)
            num_skipped += (not actor_stepped) + (not critic_stepped)
            coef *= cfg.entropy_annealing
            with torch.no_grad():
                sums["actor_loss"] += policy_loss.item()
                sums["critic_loss"] += critic_loss.item()
                sums["entropy"] += entropy.item()
                sums["clip_fraction"] += ((ratio - 1.0).abs() > cfg.clip_param).float().mean().item()
                sums["approx_kl"] += ((ratio - 1.0) - (logp - mb["logp"])).mean().item()
            n_minibatches += 1
    metrics = {k: v / n_minibatches for k, v in sums.items()}
    metrics.update(entropy_coeff=coef, n_minibatches=float(n_minibatches),
                   initial_ratio_deviation=initial_ratio_deviation, num_nonfinite_skipped=float(num_skipped))
    return metrics
