"""R_m, the learned model-error predictor (Algorithm 1 line 5; paper "Approximating R_m"; reference MAG
``networks/dreamer/dense.py:DenseModel`` and ``agent/optim/loss.py:{get_model_loss_for_m_r_training,
m_r_perdictor_loss}``).

The planner ranks L candidate predictions ``(z_{t+1}^j ~ p(z | h_{t+1}), h_{t+1})`` that share ``h_{t+1}`` and
differ only in the sampled latent, by ``R_m`` of each candidate's features. The paper labels R_m with the error
of *the model's sampled prediction* on a real transition, so that is the default label (``"candidate"``): for
each real row t, draw candidates ``z^j ~ p(z_t | h_t)`` as imagination does; R_m's input is ``[z^j, h_t]`` and its
label is that candidate's own error against the real data, per agent:

* ``reconstruction``: Huber error of ``decoder([z^j, h_t])`` against the real ``o_t`` (mean or sum over dims);
* ``reward``: Huber error of the reward head on ``[z^j, h_t]`` against the real team reward ``r_t``;
* ``kl`` (the latent term): ``-log q(z^j | h_t, o_t)``, how unlikely the candidate is under the posterior
  (mean or sum over categoricals, as ``kl_reduction``);
* optional (``REFERENCE_TERMS``): continue, av-action and MI losses of the heads on the candidate's features.

``"posterior"`` reproduces the released code's label (with its scale and two-pass defects fixed, below): R_m sees a
prior sample ``[z ~ p(z_t | h_t), h_t]`` but is labelled with the world-model losses of the *posterior* features.
Given ``h_t`` that label does not depend on the sample R_m sees, so R_m cannot rank candidates that share ``h``;
it stays as an ablation.

Defects of the released code fixed in both modes:

1. **Two stochastic passes.** The reference builds the labels from one ``rollout_representation`` pass and R_m's
   inputs from a second, independent pass. Here inputs and labels come from one ``WorldModel.loss`` output.
2. **Reconstruction scaled away.** The reference's per-step reconstruction label is divided by ``(T-1)*B*N`` and
   then averaged over obs dims (about 1e-5..1e-6 of its size). Here it is the per-agent Huber error averaged
   (``reconstruction_reduction="mean"``) or summed (``"sum"``) over obs dims.
3. **Labels mix in non-error terms.** The reference always adds the MI, continue and av-action losses. The paper's
   error is reconstruction (+ latent) + reward, so the default is ``PAPER_TERMS``; ``REFERENCE_TERMS`` is the
   released code's choice.
4. **Uninformative rows.** Terms masked in the world-model loss (reward at ``is_first``, MI without a previous
   action, ...) contribute 0 to the label instead of a meaningless error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rllib_mag.models.config import LOSS_TERMS, WorldModelConfig
from rllib_mag.models.layers import mlp
from rllib_mag.models.world_model import FilterOutput, WorldModel, WorldModelOutput

#: Terms of the paper's model error: the latent term (the Dreamer form of observation error), reconstruction, reward.
PAPER_TERMS: tuple[str, ...] = ("kl", "reconstruction", "reward")
#: Terms summed by the released code's label (``rew/rec/avl/pcont/dis`` flags, all True, plus the KL).
REFERENCE_TERMS: tuple[str, ...] = LOSS_TERMS
#: ``"candidate"``: the error of the sampled prediction R_m sees (paper); ``"posterior"``: the released code's label.
LABEL_MODES: tuple[str, ...] = ("candidate", "posterior")


@dataclass(frozen=True)
class ModelRewardLabel:
    """How R_m's training pairs are built.

    Attributes:
        model_reward_label: ``"candidate"`` (default, paper) or ``"posterior"`` (released code); see the module
            docstring.
        model_error_terms: which per-step errors are summed into the label (``PAPER_TERMS`` or a subset of
            ``LOSS_TERMS``).
        model_error_reconstruction_reduction: ``"mean"`` or ``"sum"`` of the reconstruction error over obs dims.
        model_reward_label_candidates: prior samples drawn per real row in ``"candidate"`` mode (each is one
            training pair). More did not rank better (1, 4, 16 gave the same Spearman, ``docs/model_error.md``)
            and cost up to 2x per step.
    """

    model_reward_label: str = "candidate"
    model_error_terms: tuple[str, ...] = PAPER_TERMS
    model_error_reconstruction_reduction: str = "mean"
    model_reward_label_candidates: int = 1

    def __post_init__(self) -> None:
        if self.model_reward_label not in LABEL_MODES:
            raise ValueError(f"model_reward_label must be one of {LABEL_MODES}, got {self.model_reward_label!r}")
        terms = self.model_error_terms
        if not terms or any(t not in LOSS_TERMS for t in terms):
            raise ValueError(f"model_error_terms must be a non-empty subset of {list(LOSS_TERMS)}, got {list(terms)}")
        if self.model_error_reconstruction_reduction not in ("mean", "sum"):
            raise ValueError("model_error_reconstruction_reduction must be 'mean' or 'sum', got "
                             f"{self.model_error_reconstruction_reduction!r}")
        if not isinstance(self.model_reward_label_candidates, int) or self.model_reward_label_candidates < 1:
            raise ValueError("model_reward_label_candidates must be a positive int, got "
                             f"{self.model_reward_label_candidates!r}")
        object.__setattr__(self, "model_error_terms", tuple(terms))


class ModelRewardPredictor(nn.Module):
    """Per-agent ELU MLP ``features [..., N, F] -> predicted one-step model error [..., N]`` (no agent mixing,
    default PyTorch init, as the reference's ``DenseModel(F, 1, 4, 256)``)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.net = mlp(cfg.feature_dim, 1, cfg.model_reward_layers, cfg.head_hidden, nn.ELU)
        self.to(cfg.device)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)


def _sum_terms(per_step: dict[str, Tensor], terms: Sequence[str], scale: float) -> Tensor:
    return sum(per_step[t] * (scale if t == "reconstruction" else 1.0) for t in terms)


def _reconstruction_scale(output: FilterOutput, reconstruction_reduction: str) -> float:
    """Factor turning ``output``'s reconstruction reduction into ``reconstruction_reduction``."""
    if output.reconstruction_reduction == reconstruction_reduction:
        return 1.0
    return 1.0 / output.obs_dim if reconstruction_reduction == "mean" else float(output.obs_dim)


def model_error_labels(output: WorldModelOutput, terms: Sequence[str] = PAPER_TERMS,
                       reconstruction_reduction: str = "mean") -> Tensor:
    """``"posterior"`` labels ``[T, B, N]`` (detached): the sum of the world-model losses ``output.per_step[term]``
    over ``terms``, with the reconstruction error averaged (``"mean"``) or summed (``"sum"``) over obs dims."""
    ModelRewardLabel("posterior", tuple(terms), reconstruction_reduction)  # validates
    return _sum_terms(output.per_step, terms, _reconstruction_scale(output, reconstruction_reduction)).detach()


def candidate_errors(world_model: WorldModel, output: FilterOutput, stoch: Tensor,
                     terms: Sequence[str] = LOSS_TERMS) -> tuple[Tensor, dict[str, Tensor]]:
    """Candidate latents ``stoch [..., T, B, N, C, K]`` at the posterior's ``h_t``: their features
    ``[z, h_t]`` ``[..., T, B, N, F]`` and their errors ``[..., T, B, N]`` named in ``terms``: the heads on the
    features against the real targets, and the latent term ``-log q(z | h_t, o_t)`` (``"kl"``); masked as the
    world-model loss masks each term."""
    deter = output.posterior.deter.expand(*stoch.shape[:-2], output.posterior.deter.shape[-1])
    features = torch.cat([stoch.flatten(-2), deter], -1)
    errors = world_model.head_errors(features, output.targets, terms)
    if "kl" in terms:
        neg_log_q = -(stoch * output.posterior_logits.log_softmax(-1)).sum(-1)  # [..., T, B, N, C]
        errors["kl"] = neg_log_q.mean(-1) if world_model.cfg.kl_reduction == "mean" else neg_log_q.sum(-1)
    return features, {name: value * output.masks[name] for name, value in errors.items()}


def label_pass(world_model: WorldModel, batch: dict[str, Tensor], label: ModelRewardLabel) -> FilterOutput:
    """The world-model pass on a real ``batch`` that ``model_reward_pairs`` needs for ``label``: the posterior
    filter only (``WorldModel.filtered``) for ``"candidate"``, whose labels score the candidates with the heads;
    the whole ``WorldModel.loss`` for ``"posterior"``, whose labels are the posterior's own losses."""
    return world_model.loss(batch) if label.model_reward_label == "posterior" else world_model.filtered(batch)


def model_reward_pairs(world_model: WorldModel, output: FilterOutput, label: ModelRewardLabel,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """R_m's training inputs ``[..., N, F]`` and labels ``[..., N]`` (both detached) from one no-grad world-model
    pass ``output`` on real data (line 5; ``label_pass`` gives the pass ``label`` needs).

    ``"candidate"``: ``label.model_reward_label_candidates`` latents per row drawn from ``p(z_t | h_t)`` with
    ``generator``, each labelled with its own error (``candidate_errors``). ``"posterior"``: one prior sample per
    row, labelled with the posterior's losses (``model_error_labels``; ``output`` must be a ``WorldModelOutput``).
    """
    terms, reduction = label.model_error_terms, label.model_error_reconstruction_reduction
    if label.model_reward_label == "posterior":
        if not isinstance(output, WorldModelOutput):
            raise TypeError("the 'posterior' R_m label is the posterior's losses: pass WorldModel.loss's output, "
                            f"not {type(output).__name__} (label_pass chooses the pass)")
        return output.prior_sample(generator).features().detach(), model_error_labels(output, terms, reduction)
    logits = output.prior_logits.detach()
    with torch.no_grad():
        stoch = world_model.sample_latent(logits.expand(label.model_reward_label_candidates, *logits.shape), generator)
        features, errors = candidate_errors(world_model, output, stoch, terms)
    return features, _sum_terms(errors, terms, _reconstruction_scale(output, reduction))


def model_reward_loss(model_reward: ModelRewardPredictor, inputs: Tensor, labels: Tensor) -> Tensor:
    """``smooth_l1(R_m(inputs), labels)`` (the reference's ``m_r_perdictor_loss``)."""
    return F.smooth_l1_loss(model_reward(inputs), labels)
