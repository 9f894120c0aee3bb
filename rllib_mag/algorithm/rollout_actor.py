"""Model-rollout actors: batched MPC imagination (Algorithm 1 lines 6-15) as Ray actors.

Each iteration the algorithm `ray.put`s the current weights once; every actor loads them, filters a batch of
real D_e sequences with the world model's posterior to get start states (line 7), imagines k steps with
random-shooting MPC (lines 8-14) and returns the synthetic batch for D_m (line 13).
`RolloutActorPool` replaces an actor that died and reruns its share, so the iteration goes on.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch

from rllib_mag.algorithm.catalog import ROLLOUT_NETWORKS, MAGCatalog
from rllib_mag.models.world_model import RSSMState
from rllib_mag.planning.imagination import PlanningConfig, SyntheticBatch, imagine

logger = logging.getLogger(__name__)


def planning_config(config: Any) -> PlanningConfig:
    """The torch core's `PlanningConfig` from a `MAGConfig` (`mode="mamba"` turns planning off)."""
    return PlanningConfig(rollout_length=config.rollout_length_k, horizon=config.planning_horizon_H,
                          candidates=config.planning_candidates_L, selection=config.planning_selection,
                          enabled=config.mode == "mag", score_discount=config.planning_discount)


def draw_rows(num_rows: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` row indices in `[0, num_rows)`, uniformly: distinct when `num_rows >= count` (no start state is
    imagined twice), otherwise every row once and the rest drawn with replacement."""
    if num_rows >= count:
        return torch.randperm(num_rows, generator=generator)[:count]
    extra = torch.randint(num_rows, (count - num_rows,), generator=generator)
    return torch.cat([torch.randperm(num_rows, generator=generator), extra])


class ModelRollout:
    """Holds CPU/GPU copies of the world model, actor, critic and R_m and imagines synthetic data."""

    def __init__(self, observation_space: gym.spaces.Dict, world_model_settings: dict[str, Any],
                 planning: PlanningConfig, device: str = "cpu", dtype: str = "float32", num_threads: int = 1) -> None:
        torch.set_num_threads(num_threads)
        catalog = MAGCatalog(observation_space, world_model_settings, device)
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        # Networks compute in `dtype`; `load_state_dict` casts the learner's float32 weights.
        for name in ROLLOUT_NETWORKS:
            setattr(self, name, getattr(catalog, f"build_{name}")().eval().to(self.dtype))
        self.planning = planning

    def location(self) -> dict[str, str]:
        """Where this rollout runs: Ray node id and torch device."""
        return {"node_id": ray.get_runtime_context().get_node_id(),
                "device": str(next(self.world_model.parameters()).device)}

    def load_weights(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        for name in ROLLOUT_NETWORKS:
            getattr(self, name).load_state_dict(weights[name])

    @torch.inference_mode()
    def start_states(self, real_batch: dict[str, np.ndarray], num_starts: int,
                     generator: torch.Generator) -> RSSMState:
        """Posterior states of real sequences (Algorithm 1 line 7), `num_starts` of them drawn uniformly, without
        replacement when there are enough rows (`draw_rows`); only the filter runs, not the world-model loss.

        Terminal and truncated rows (`is_last`: no action was taken there) are never start states.
        """
        batch = {key: torch.as_tensor(value, device=self.device) for key, value in real_batch.items()}
        batch = {key: value.to(self.dtype) if value.is_floating_point() else value for key, value in batch.items()}
        posterior = self.world_model.filter(batch)[0].map(lambda x: x.flatten(0, 1))
        candidates = torch.nonzero(batch["is_last"].flatten() == 0).squeeze(-1)
        index = candidates[draw_rows(len(candidates), num_starts, generator).to(candidates.device)]
        return posterior.map(lambda x: x[index].clone())

    def rollout(self, weights: dict[str, dict[str, torch.Tensor]], real_batch: dict[str, np.ndarray],
                num_starts: int, seed: int) -> SyntheticBatch:
        """Imagine k steps from `num_starts` start states; the synthetic batch comes back on the CPU."""
        self.load_weights(weights)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        start = self.start_states(real_batch, num_starts, torch.Generator().manual_seed(seed))
        return imagine(self.world_model, self.actor, self.critic, self.model_reward, start, self.planning,
                       generator).to("cpu")


RemoteModelRollout = ray.remote(ModelRollout)


class RolloutActorPool:
    """`num_model_rollout_actors` remote `ModelRollout`s (or one in-process when 0), replaced when they die."""

    def __init__(self, config: Any, observation_space: gym.spaces.Dict) -> None:
        self._num_actors = config.num_model_rollout_actors
        device = "cuda" if config.num_gpus_per_rollout_actor > 0 else "cpu"
        self._args = (observation_space, config.world_model_settings(), planning_config(config), device,
                      config.planning_dtype, max(1, int(config.num_cpus_per_rollout_actor)))
        self._options = {"num_cpus": config.num_cpus_per_rollout_actor,
                         "num_gpus": config.num_gpus_per_rollout_actor}
        self.num_restarts = 0
        if self._num_actors == 0:
            self._local = ModelRollout(*self._args[:-1], num_threads=torch.get_num_threads())
            self.actors: list[Any] = []
        else:
            self.actors = [self._new_actor() for _ in range(self._num_actors)]

    def _new_actor(self) -> Any:
        return RemoteModelRollout.options(**self._options).remote(*self._args)

    def locations(self) -> list[dict[str, str]]:
        """Node id and torch device of every rollout actor (of the in-process rollout when there are none)."""
        if not self.actors:
            return [self._local.location()]
        return ray.get([actor.location.remote() for actor in self.actors])

    def rollout(self, weights: dict[str, Any], real_batches: list[dict[str, np.ndarray]],
                num_starts: list[int], seeds: list[int]) -> list[SyntheticBatch]:
        """One job per actor (`len(real_batches) == num_actors`, or 1 in-process job)."""
        if not self.actors:
            return [self._local.rollout(weights, real_batches[0], num_starts[0], seeds[0])]
        weights_ref = ray.put(weights)
        jobs = list(zip(real_batches, num_starts, seeds))
        refs = [actor.rollout.remote(weights_ref, *job) for actor, job in zip(self.actors, jobs)]
        results = []
        for index, (ref, job) in enumerate(zip(refs, jobs)):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayActorError as err:
                logger.warning("model-rollout actor %d died (%s); replacing it and rerunning its share", index, err)
                self.num_restarts += 1
                self.actors[index] = self._new_actor()
                results.append(ray.get(self.actors[index].rollout.remote(weights_ref, *job)))
        return results

    def stop(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
