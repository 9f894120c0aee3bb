"""Gradient steps of the model-learning phase (Algorithm 1 lines 4-5; reference MAG
``agent/learners/DreamerLearner.py:{train_model, step}``) for the RLlib learner to call."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rllib_mag.learning.data_parallel import DataParallel, average_gradients
from rllib_mag.models.layers import eval_mode
from rllib_mag.models.world_model import WorldModel, WorldModelOutput
from rllib_mag.planning.model_reward import PAPER_TERMS, ModelRewardPredictor, model_reward_loss


def train_model_reward_step(model_reward: ModelRewardPredictor, optimizer: torch.optim.Optimizer,
                            output: WorldModelOutput, terms: Sequence[str] = PAPER_TERMS,
                            reconstruction_reduction: str = "mean",
                            data_parallel: DataParallel | None = None) -> float:
    """One R_m gradient step (Algorithm 1 line 5; no grad clipping, as the reference). Returns the loss."""
    loss = model_reward_loss(model_reward, output, terms, reconstruction_reduction)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(model_reward.parameters(), data_parallel)
    optimizer.step()
    return loss.item()


class WorldModelTrainer:
    """Owns the world-model and R_m Adam optimisers (``cfg.model_lr`` / ``cfg.model_reward_lr``).

    With ``data_parallel`` every learner passes its shard of each batch and the gradients are averaged over the
    learners before clipping and the step.
    """

    def __init__(self, world_model: WorldModel, model_reward: ModelRewardPredictor,
                 label_terms: Sequence[str] = PAPER_TERMS, reconstruction_reduction: str = "mean",
                 data_parallel: DataParallel | None = None) -> None:
        cfg = world_model.cfg
        self.world_model, self.model_reward = world_model, model_reward
        self.label_terms, self.reconstruction_reduction = tuple(label_terms), reconstruction_reduction
        self.data_parallel = data_parallel
        self.model_opt = torch.optim.Adam(world_model.parameters(), lr=cfg.model_lr)
        self.model_reward_opt = torch.optim.Adam(model_reward.parameters(), lr=cfg.model_reward_lr)

    def world_model_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One world-model step (line 4): loss on a contracts.md section 3 batch, Adam, grad-norm clip."""
        self.world_model.train()
        output = self.world_model.loss(batch)
        self.model_opt.zero_grad(set_to_none=True)
        output.total.backward()
        average_gradients(self.world_model.parameters(), self.data_parallel)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.world_model.parameters(), self.world_model.cfg.grad_clip)
        self.model_opt.step()
        metrics = {f"model_{name}": value.item() for name, value in output.terms.items()}
        metrics.update(model_loss=output.total.item(), model_grad_norm=grad_norm.item())
        return metrics

    def model_reward_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One R_m step (line 5): a no-grad, eval-mode world-model pass on ``batch`` gives both R_m's inputs (prior
        features) and its labels (per-step losses), then ``smooth_l1`` regression."""
        with eval_mode(self.world_model), torch.no_grad():
            output = self.world_model.loss(batch)
        loss = train_model_reward_step(self.model_reward, self.model_reward_opt, output, self.label_terms,
                                       self.reconstruction_reduction, self.data_parallel)
        return {"model_reward_loss": loss}
