"""Gradient steps of the model-learning phase (Algorithm 1 lines 4-5; reference MAG
``agent/learners/DreamerLearner.py:{train_model, step}``) for the RLlib learner to call."""

from __future__ import annotations

import torch
from torch import Tensor

from rllib_mag.learning.data_parallel import DataParallel
from rllib_mag.learning.gradient_step import gradient_step
from rllib_mag.models.layers import eval_mode
from rllib_mag.models.world_model import WorldModel
from rllib_mag.planning.model_reward import (ModelRewardLabel, ModelRewardPredictor, label_pass, model_reward_loss,
                                             model_reward_pairs)


def train_model_reward_step(model_reward: ModelRewardPredictor, optimizer: torch.optim.Optimizer, inputs: Tensor,
                            labels: Tensor, data_parallel: DataParallel | None = None) -> tuple[float, bool]:
    """One R_m gradient step on ``(inputs, labels)`` (Algorithm 1 line 5; no grad clipping, as the reference).
    Returns the loss and whether the step was taken (``gradient_step`` skips non-finite ones)."""
    loss = model_reward_loss(model_reward, inputs, labels)
    _, stepped = gradient_step(loss, model_reward.parameters(), optimizer, None, data_parallel)
    return loss.item(), stepped


class WorldModelTrainer:
    """Owns the world-model and R_m Adam optimisers (``cfg.world_model_lr`` / ``cfg.model_reward_lr``).

    ``label`` says how R_m's training pairs are built (``ModelRewardLabel``; default: the error of the sampled
    candidate R_m sees). With ``data_parallel`` every learner passes its shard of each batch and the gradients
    are averaged over the learners before clipping and the step. ``autocast_dtype=torch.bfloat16`` computes the
    world-model loss under ``torch.autocast`` (matrix products in bf16; softmax, log-probs, KL and the losses stay
    float32 by autocast's op lists; weights, gradients and Adam stay float32).
    """

    def __init__(self, world_model: WorldModel, model_reward: ModelRewardPredictor,
                 label: ModelRewardLabel = ModelRewardLabel(), data_parallel: DataParallel | None = None,
                 autocast_dtype: torch.dtype | None = None) -> None:
        cfg = world_model.cfg
        self.world_model, self.model_reward, self.label = world_model, model_reward, label
        self.data_parallel, self.autocast_dtype = data_parallel, autocast_dtype
        self.model_opt = torch.optim.Adam(world_model.parameters(), lr=cfg.world_model_lr)
        self.model_reward_opt = torch.optim.Adam(model_reward.parameters(), lr=cfg.model_reward_lr)

    def world_model_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One world-model step (line 4): loss on a contracts.md section 3 batch, Adam, grad-norm clip; a
        non-finite loss or gradient skips the step (``model_num_nonfinite_skipped`` 1)."""
        self.world_model.train()
        device_type = next(self.world_model.parameters()).device.type
        with torch.autocast(device_type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            output = self.world_model.loss(batch)
        grad_norm, stepped = gradient_step(output.total, self.world_model.parameters(), self.model_opt,
                                           self.world_model.cfg.model_grad_clip, self.data_parallel)
        metrics = {f"model_{name}": value.item() for name, value in output.terms.items()}
        metrics.update(model_loss=output.total.item(), model_grad_norm=grad_norm,
                       model_num_nonfinite_skipped=float(not stepped))
        return metrics

    def model_reward_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One R_m step (line 5): a no-grad, eval-mode world-model pass on ``batch`` (``label_pass``: the filter
        only for the default label) gives R_m's inputs and labels (``model_reward_pairs``: by default
        prior-sampled candidates and each one's own error), then ``smooth_l1`` regression."""
        with eval_mode(self.world_model), torch.no_grad():
            output = label_pass(self.world_model, batch, self.label)
            inputs, labels = model_reward_pairs(self.world_model, output, self.label)
        loss, stepped = train_model_reward_step(self.model_reward, self.model_reward_opt, inputs, labels,
                                                self.data_parallel)
        return {"model_reward_loss": loss, "model_reward_label_mean": labels.mean().item(),
                "model_reward_num_nonfinite_skipped": float(not stepped)}
