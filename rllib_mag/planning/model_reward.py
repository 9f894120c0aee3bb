"""R_m, the learned one-step model-error predictor (Algorithm 1 line 5; paper "Approximating R_m"; reference
MAG ``networks/dreamer/dense.py:DenseModel`` and ``agent/optim/loss.py:{get_model_loss_for_m_r_training,
m_r_perdictor_loss}``).

``R_m(features of the prior state at t)`` predicts the error the world model makes when predicting step t from
``h_t``; the planner minimises its sum along candidate rollouts (the model-reward is ``-R_m``).

Defects of the released code fixed here:

1. **Two stochastic passes.** The reference builds the labels from one ``rollout_representation`` pass and R_m's
   inputs from a second, independent pass, so inputs and labels come from different latent samples. Here both come
   from the same ``WorldModel.loss`` output (``output.prior`` and ``output.per_step``).
2. **Reconstruction scaled away.** The reference's per-step reconstruction label is Huber x (1 - fake) divided by
   ``(T-1)*B*N`` (meant for the batch loss) and then averaged over obs dims, i.e. about 1e-5..1e-6 of its real
   size. Here it is the per-agent Huber error averaged over obs dims (``reconstruction_reduction="mean"``) or
   summed (``"sum"``).
3. **Labels mix in non-error terms.** The reference always adds the mutual-information cross-entropy, the
   continue and the av-action NLLs. The paper's error is reconstruction (+ latent KL) + reward error, so the
   default is ``PAPER_TERMS``; ``REFERENCE_TERMS`` reproduces the released code's choice.
4. **Uninformative rows.** Terms masked in the world-model loss (reward at ``is_first``, MI without a previous
   action, ...) contribute 0 to the label instead of a meaningless error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from rllib_mag.models.config import LOSS_TERMS, WorldModelConfig
from rllib_mag.models.layers import mlp
from rllib_mag.models.world_model import WorldModelOutput

#: Terms of the paper's model error: latent KL (the Dreamer form of observation error), reconstruction, reward.
PAPER_TERMS: tuple[str, ...] = ("kl", "reconstruction", "reward")
#: Terms summed by the released code's label (``rew/rec/avl/pcont/dis`` flags, all True, plus the KL).
REFERENCE_TERMS: tuple[str, ...] = LOSS_TERMS


class ModelRewardPredictor(nn.Module):
    """Per-agent ELU MLP ``features [..., N, F] -> predicted one-step model error [..., N]`` (no agent mixing,
    default PyTorch init, as the reference's ``DenseModel(F, 1, 4, 256)``)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.net = mlp(cfg.feature_dim, 1, cfg.model_reward_layers, cfg.head_hidden, nn.ELU)
        self.to(cfg.device)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)


def model_error_labels(output: WorldModelOutput, terms: Sequence[str] = PAPER_TERMS,
                       reconstruction_reduction: str = "mean") -> Tensor:
    """Per-step, per-agent model-error labels ``[T, B, N]`` (detached): the sum of ``output.per_step[term]`` over
    ``terms``, with the reconstruction error averaged (``"mean"``) or summed (``"sum"``) over obs dims."""
    unknown = [t for t in terms if t not in LOSS_TERMS]
    if unknown or not terms:
        raise ValueError(f"label terms must be a non-empty subset of {list(LOSS_TERMS)}, got {list(terms)}")
    if reconstruction_reduction not in ("mean", "sum"):
        raise ValueError(f"reconstruction_reduction must be 'mean' or 'sum', got {reconstruction_reduction!r}")
    scale = 1.0
    if output.reconstruction_reduction != reconstruction_reduction:
        scale = 1.0 / output.obs_dim if reconstruction_reduction == "mean" else float(output.obs_dim)
    label = sum(output.per_step[t] * (scale if t == "reconstruction" else 1.0) for t in terms)
    return label.detach()


def model_reward_loss(model_reward: ModelRewardPredictor, output: WorldModelOutput,
                      terms: Sequence[str] = PAPER_TERMS, reconstruction_reduction: str = "mean") -> Tensor:
    """``smooth_l1(R_m(sg(prior features)), labels)`` with inputs and labels from the same pass ``output``."""
    labels = model_error_labels(output, terms, reconstruction_reduction)
    return F.smooth_l1_loss(model_reward(output.prior.features().detach()), labels)
