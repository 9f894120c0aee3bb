"""`MAGTorchLearner`: the world model, R_m, actor and critic updates of Algorithm 1 on an RLlib Learner.

The Learner owns the networks (`MAGTorchRLModule`) on its device (a GPU when `num_gpus_per_learner=1`) and four
optimizers registered with RLlib (`world_model`, `model_reward`, `actor`, `critic`), so RLlib checkpoints them.
MAG's phases are separate updates with separate data, so the algorithm calls them by name through
`LearnerGroup.foreach_learner`: `train_models` (lines 4-5), then per policy round `imagine` (lines 6-15 on the
learner's own networks, with `num_model_rollout_actors: 0`) or `add_synthetic` (the rollout actors' batches,
fetched from the object store), and `train_policy` (lines 16-18) on the learner's own D_m.

With `num_learners > 1` the learners are data parallel: each call passes one shard per learner, every learner
trains on its own shard and the gradients are averaged over the learners (`learning.data_parallel`), so all of
them hold the same weights after every step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from rllib_mag.algorithm.catalog import ROLLOUT_NETWORKS
from rllib_mag.algorithm.replay import SyntheticReplayBuffer
from rllib_mag.algorithm.rollout_actor import Imagination
from rllib_mag.learning.data_parallel import DataParallel
from rllib_mag.learning.ppo import behaviour_log_probs, make_optimizers, ppo_update
from rllib_mag.learning.world_model_trainer import WorldModelTrainer
from rllib_mag.planning.imagination import SyntheticBatch


#: Metric keys that count events (summed over steps, not averaged).
SKIPPED_STEPS = "num_nonfinite_skipped"


def mean_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over `metrics` (the learners' results, or steps)."""
    return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]} if metrics else {}


def step_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Metrics of consecutive gradient steps: means, with the skipped-step counts summed."""
    summary = mean_metrics(metrics)
    summary.update({key: float(sum(m[key] for m in metrics)) for key in summary if key.endswith(SKIPPED_STEPS)})
    return summary


class MAGTorchLearner(TorchLearner):
    """Runs MAG's training phases on the module `default_policy`."""

    @property
    def networks(self) -> Any:
        """The `MAGTorchRLModule` (RLlib wraps it in DDP when `num_learners > 1`; MAG's losses use it directly)."""
        return self.module[DEFAULT_MODULE_ID].unwrapped()

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        config = config or self.config
        module = self.module[module_id].unwrapped()
        self.data_parallel = DataParallel() if self.distributed else None
        autocast = None if config.world_model_dtype == "float32" else getattr(torch, config.world_model_dtype)
        self.model_trainer = WorldModelTrainer(module.world_model, module.model_reward,
                                               config.model_reward_label_settings(), self.data_parallel, autocast)
        self.ppo_config = config.ppo_settings()
        actor_opt, critic_opt = make_optimizers(module.actor, module.critic, self.ppo_config)
        self.entropy_coeff = config.entropy_coeff
        # D_m (line 13): this learner's shard of every imagined round.
        self.num_shards = max(config.num_learners, 1)
        self.synthetic_buffer = SyntheticReplayBuffer(-(-config.synthetic_buffer_capacity() // self.num_shards))
        self.imagination = Imagination(module, config.planning_settings(), config.compile)
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

    def _own_shard(self, shards: list[Any]) -> Any:
        """This learner's item of `shards` (one per learner, in rank order; an `ObjectRef` is fetched)."""
        shard = shards[self.data_parallel.rank if self.data_parallel is not None else 0]
        return ray.get(shard) if isinstance(shard, ray.ObjectRef) else shard

    def train_models(self, shards: list[Any]) -> dict[str, float]:
        """`world_model_train_steps` world-model steps (line 4), then R_m steps (line 5), on D_e sequences.

        Each shard is `(model_batches, model_reward_batches)`: lists of batches, one per gradient step.
        """
        model_batches, model_reward_batches = self._own_shard(shards)
        model = [self.model_trainer.world_model_step(self._to_tensors(b)) for b in model_batches]
        model_reward = [self.model_trainer.model_reward_step(self._to_tensors(b)) for b in model_reward_batches]
        return {**step_metrics(model), **step_metrics(model_reward)}

    def imagine(self, shards: list[Any]) -> dict[str, float]:
        """Lines 6-15 on this learner's own networks into its D_m; each shard is `(real_batch, num_starts, seed)`.
        Returns the round's statistics (`_round_metrics`) and the seconds spent compiling."""
        synthetic = self.imagination(*self._own_shard(shards))
        self.synthetic_buffer.add(synthetic.to(self._device))
        return {**self._round_metrics(synthetic), "compile_seconds": self.imagination.take_compile_seconds()}

    def add_synthetic(self, shards: list[Any]) -> dict[str, float]:
        """Fetch the rollout actors' batches (`ObjectRef`s, one per actor, joined along M) from the object store
        and keep this learner's shard in D_m; returns the statistics of the whole round."""
        synthetic = SyntheticReplayBuffer.concatenate(ray.get(self._own_shard(shards)))
        shard = synthetic.split(self.num_shards)[self.data_parallel.rank if self.data_parallel is not None else 0]
        self.synthetic_buffer.add(shard.to(self._device))
        return self._round_metrics(synthetic)

    def _round_metrics(self, synthetic: SyntheticBatch) -> dict[str, float]:
        """Planner statistics of an imagined round, its transitions and this learner's D_m size."""
        return {**synthetic.planner_metrics(), "num_synthetic_transitions": synthetic.actions.shape[:2].numel(),
                "synthetic_buffer_transitions": len(self.synthetic_buffer)}

    def train_policy(self) -> dict[str, float]:
        """PPO epochs on this learner's D_m (lines 16-18); the entropy bonus anneals across calls. With bfloat16
        rollout actors the old log-probs are recomputed by this learner's float32 actor, so PPO starts on-policy
        (the bf16 actor's differ by bf16 rounding)."""
        synthetic = self.synthetic_buffer.all()
        if self.config.planning_dtype != "float32":  # bf16 rollouts: old log-probs in the learner's precision
            synthetic = replace(synthetic, logp=behaviour_log_probs(self.networks.actor, synthetic))
        metrics = ppo_update(self.networks.actor, self.networks.critic,
                             self.get_optimizer(DEFAULT_MODULE_ID, "actor"),
                             self.get_optimizer(DEFAULT_MODULE_ID, "critic"), synthetic,
                             self.ppo_config, entropy_coeff=self.entropy_coeff, data_parallel=self.data_parallel)
        self.entropy_coeff = metrics["entropy_coeff"]
        return metrics

    def rollout_weights_ref(self) -> ray.ObjectRef | None:
        """`rollout_weights` put in the object store by this learner (first learner only): the rollout actors fetch
        them from there, not through the driver."""
        weights = self.rollout_weights()
        return None if weights is None else ray.put(weights)

    def rollout_weights(self) -> dict[str, dict[str, torch.Tensor]] | None:
        """CPU state dicts of the networks the model-rollout actors need (from the first learner only: data-parallel
        learners hold the same weights)."""
        if self.data_parallel is not None and self.data_parallel.rank != 0:
            return None
        return {name: {k: v.detach().cpu() for k, v in getattr(self.networks, name).state_dict().items()}
                for name in ROLLOUT_NETWORKS}

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        synthetic = self.synthetic_buffer.get_state() if self.config.checkpoint_synthetic_buffer else None
        return {**super().get_state(*args, **kwargs), "entropy_coeff": self.entropy_coeff,
                "synthetic_buffer": synthetic}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.entropy_coeff = state.get("entropy_coeff", self.entropy_coeff)
        if state.get("synthetic_buffer") is not None:
            self.synthetic_buffer.set_state(state["synthetic_buffer"])
