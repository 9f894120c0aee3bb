"""`MAGTorchLearner`: the world model, R_m, actor and critic updates of Algorithm 1 on an RLlib Learner.

The Learner owns the networks (`MAGTorchRLModule`) on its device (a GPU when `num_gpus_per_learner=1`) and four
optimizers registered with RLlib (`world_model`, `model_reward`, `actor`, `critic`), so RLlib checkpoints them.
MAG's phases are separate updates with separate data, so the algorithm calls them by name through
`LearnerGroup.foreach_learner`: `train_models` (lines 4-5) and `train_policy` (lines 16-18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from rllib_mag.algorithm.catalog import ROLLOUT_NETWORKS
from rllib_mag.learning.ppo import PPOConfig, make_optimizers, ppo_update
from rllib_mag.learning.world_model_trainer import WorldModelTrainer
from rllib_mag.planning.imagination import SyntheticBatch


def mean_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]} if metrics else {}


class MAGTorchLearner(TorchLearner):
    """Runs MAG's training phases on the module `default_policy`."""

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        config = config or self.config
        module = self.module[module_id]
        self.model_trainer = WorldModelTrainer(module.world_model, module.model_reward, config.model_error_terms)
        self.ppo_config = PPOConfig(
            epochs=config.ppo_epochs, minibatch_size=config.ppo_minibatch_size, clip=config.clip_param,
            entropy_coef=config.entropy_coeff, entropy_annealing=config.entropy_annealing,
            grad_clip=config.policy_grad_clip, gamma=config.gamma, lam=config.lambda_, actor_lr=config.actor_lr,
            critic_lr=config.critic_lr)
        actor_opt, critic_opt = make_optimizers(module.actor, module.critic, self.ppo_config)
        self.entropy_coef = config.entropy_coeff
        optimizers = {"world_model": (self.model_trainer.model_opt, module.world_model),
                      "model_reward": (self.model_trainer.model_reward_opt, module.model_reward),
                      "actor": (actor_opt, module.actor), "critic": (critic_opt, module.critic)}
        for name, (optimizer, network) in optimizers.items():
            self.register_optimizer(module_id=module_id, optimizer_name=name, optimizer=optimizer,
                                    params=list(network.parameters()))

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict) -> Any:
        raise NotImplementedError("MAG's losses run in train_models / train_policy, not in Learner.update")

    def _to_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {key: torch.as_tensor(value, device=self._device) for key, value in batch.items()}

    def train_models(self, model_batches: list[dict[str, np.ndarray]],
                     model_reward_batches: list[dict[str, np.ndarray]]) -> dict[str, float]:
        """`world_model_train_steps` world-model steps (line 4), then R_m steps (line 5), on D_e sequences."""
        model = [self.model_trainer.world_model_step(self._to_tensors(b)) for b in model_batches]
        model_reward = [self.model_trainer.model_reward_step(self._to_tensors(b)) for b in model_reward_batches]
        return {**mean_metrics(model), **mean_metrics(model_reward)}

    def train_policy(self, synthetic: SyntheticBatch) -> dict[str, float]:
        """PPO epochs on D_m (lines 16-18); the entropy bonus anneals across calls."""
        module = self.module[DEFAULT_MODULE_ID]
        metrics = ppo_update(module.actor, module.critic, self.get_optimizer(DEFAULT_MODULE_ID, "actor"),
                             self.get_optimizer(DEFAULT_MODULE_ID, "critic"), synthetic.to(self._device),
                             self.ppo_config, entropy_coef=self.entropy_coef)
        self.entropy_coef = metrics["entropy_coef"]
        return metrics

    def rollout_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """CPU state dicts of the networks the model-rollout actors need."""
        module = self.module[DEFAULT_MODULE_ID]
        return {name: {k: v.detach().cpu() for k, v in getattr(module, name).state_dict().items()}
                for name in ROLLOUT_NETWORKS}

    def location(self) -> dict[str, str]:
        """Ray node id and torch device of this learner."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "device": str(self._device)}

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_state(*args, **kwargs), "entropy_coef": self.entropy_coef}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.entropy_coef = state.get("entropy_coef", self.entropy_coef)
