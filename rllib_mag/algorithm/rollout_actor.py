"""Imagination (Algorithm 1 lines 6-15) from real D_e windows: in the learners, or on model-rollout Ray actors.

`Imagination` filters a batch of real sequences with the world model's posterior to get start states (line 7) and
imagines k steps with random-shooting MPC (lines 8-14), compiled with `torch.compile` or eager. With
`num_model_rollout_actors: 0` each learner runs it on its own networks (no copy, no weight round trip). Otherwise
each policy round the first learner puts its weights in the object store once, every `ModelRollout` actor loads
them and imagines its share of M, and the synthetic batches go from the object store straight to the learners'
D_m (line 13), not through the driver. `RolloutActorPool` replaces an actor that died and reruns its share.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch

from rllib_mag.algorithm.catalog import ROLLOUT_NETWORKS, MAGCatalog
from rllib_mag.compilation import Compiled
from rllib_mag.models.layers import eval_mode
from rllib_mag.models.world_model import RSSMState
from rllib_mag.planning.imagination import PlanningConfig, SyntheticBatch, imagine, imagined_step

logger = logging.getLogger(__name__)


def draw_rows(num_rows: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` row indices in `[0, num_rows)`, uniformly: distinct when `num_rows >= count` (no start state is
    imagined twice), otherwise every row once and the rest drawn with replacement."""
    if num_rows >= count:
        return torch.randperm(num_rows, generator=generator)[:count]
    extra = torch.randint(num_rows, (count - num_rows,), generator=generator)
    return torch.cat([torch.randperm(num_rows, generator=generator), extra])


class Imagination:
    """Lines 7-15 with a given set of networks: start states from real D_e windows, then k imagined steps.

    The imagined step runs under ``torch.compile`` when ``compile`` (eager otherwise, or where compilation is
    unavailable); `take_compile_seconds` reports the time spent compiling since the last call.
    """

    def __init__(self, networks: Any, planning: PlanningConfig, compile: bool) -> None:
        self.networks, self.planning = networks, planning
        self.step = Compiled(imagined_step, compile, "the imagination step")

    @property
    def device(self) -> torch.device:
        return next(self.networks.world_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.networks.world_model.parameters()).dtype

    @torch.inference_mode()
    def start_states(self, real_batch: dict[str, np.ndarray], num_starts: int,
                     generator: torch.Generator) -> RSSMState:
        """Posterior states of real sequences (Algorithm 1 line 7), `num_starts` of them drawn uniformly, without
        replacement when there are enough rows (`draw_rows`); only the filter runs, not the world-model loss.

        Terminal and truncated rows (`is_last`: no action was taken there) are never start states.
        """
        batch = {key: torch.as_tensor(value, device=self.device) for key, value in real_batch.items()}
        batch = {key: value.to(self.dtype) if value.is_floating_point() else value for key, value in batch.items()}
        with eval_mode(self.networks.world_model):
            posterior = self.networks.world_model.filter(batch)[0].map(lambda x: x.flatten(0, 1))
        candidates = torch.nonzero(batch["is_last"].flatten() == 0).squeeze(-1)
        index = candidates[draw_rows(len(candidates), num_starts, generator).to(candidates.device)]
        return posterior.map(lambda x: x[index].clone())

    def __call__(self, real_batch: dict[str, np.ndarray], num_starts: int, seed: int) -> SyntheticBatch:
        """Imagine k steps from `num_starts` start states of `real_batch`, seeded by `seed`."""
        nets = self.networks
        generator = torch.Generator(device=self.device).manual_seed(seed)
        start = self.start_states(real_batch, num_starts, torch.Generator().manual_seed(seed))
        return imagine(nets.world_model, nets.actor, nets.critic, nets.model_reward, start, self.planning, generator,
                       self.step)

    def take_compile_seconds(self) -> float:
        return self.step.take_compile_seconds()


class ModelRollout:
    """A model-rollout actor: its own (CPU/GPU, float32 or bfloat16) copies of the world model, actor, critic and
    R_m, loaded with the learner's weights before every rollout."""

    def __init__(self, observation_space: gym.spaces.Dict, world_model_settings: dict[str, Any],
                 planning: PlanningConfig, device: str = "cpu", dtype: str = "float32", num_threads: int = 1,
                 compile: bool = False) -> None:
        torch.set_num_threads(num_threads)
        catalog = MAGCatalog(observation_space, world_model_settings, device)
        # Networks compute in `dtype`; `load_state_dict` casts the learner's float32 weights.
        networks = SimpleNamespace(**{name: getattr(catalog, f"build_{name}")().eval().to(getattr(torch, dtype))
                                      for name in ROLLOUT_NETWORKS})
        self.imagination = Imagination(networks, planning, compile)

    def location(self) -> dict[str, str]:
        """Where this rollout runs: Ray node id and torch device."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "device": str(self.imagination.device)}

    def rollout(self, weights: dict[str, dict[str, torch.Tensor]], real_batch: dict[str, np.ndarray],
                num_starts: int, seed: int) -> tuple[SyntheticBatch, dict[str, float]]:
        """Load `weights`, imagine k steps from `num_starts` start states; returns the synthetic batch (on the CPU)
        and `{"compile_seconds": ...}`."""
        for name in ROLLOUT_NETWORKS:
            getattr(self.imagination.networks, name).load_state_dict(weights[name])
        synthetic = self.imagination(real_batch, num_starts, seed).to("cpu")
        return synthetic, {"compile_seconds": self.imagination.take_compile_seconds()}


RemoteModelRollout = ray.remote(ModelRollout)


class RolloutActorPool:
    """`num_model_rollout_actors` remote `ModelRollout`s, replaced when they die. Their synthetic batches stay in
    the object store: the pool hands back references, which the learners fetch into their own D_m."""

    def __init__(self, config: Any, observation_space: gym.spaces.Dict) -> None:
        device = "cuda" if config.num_gpus_per_rollout_actor > 0 else "cpu"
        self._args = (observation_space, config.world_model_settings(), config.planning_settings(), device,
                      config.planning_dtype, max(1, int(config.num_cpus_per_rollout_actor)),
                      config.compile)
        self._options = {"num_cpus": config.num_cpus_per_rollout_actor,
                         "num_gpus": config.num_gpus_per_rollout_actor}
        self.num_restarts = 0
        self.actors = [self._new_actor() for _ in range(config.num_model_rollout_actors)]

    def _new_actor(self) -> Any:
        return RemoteModelRollout.options(**self._options).remote(*self._args)

    def locations(self) -> list[dict[str, str]]:
        """Node id and torch device of every rollout actor."""
        return ray.get([actor.location.remote() for actor in self.actors])

    def _submit(self, actor: Any, weights_ref: Any, job: tuple[Any, ...]) -> tuple[Any, Any]:
        return actor.rollout.options(num_returns=2).remote(weights_ref, *job)

    def rollout(self, weights_ref: Any, real_batches: list[dict[str, np.ndarray]], num_starts: list[int],
                seeds: list[int]) -> tuple[list[ray.ObjectRef], list[dict[str, float]]]:
        """One job per actor; returns references to the synthetic batches and each job's info dict. An actor that
        died is replaced and its share rerun, so the iteration goes on."""
        jobs = list(zip(real_batches, num_starts, seeds))
        submitted = [self._submit(actor, weights_ref, job) for actor, job in zip(self.actors, jobs)]
        batch_refs, infos = [], []
        for index, ((batch_ref, info_ref), job) in enumerate(zip(submitted, jobs)):
            try:
                infos.append(ray.get(info_ref))
            except ray.exceptions.RayActorError as err:
                logger.warning("model-rollout actor %d died (%s); replacing it and rerunning its share", index, err)
                self.num_restarts += 1
                self.actors[index] = self._new_actor()
                batch_ref, info_ref = self._submit(self.actors[index], weights_ref, job)
                infos.append(ray.get(info_ref))
            batch_refs.append(batch_ref)
        return batch_refs, infos

    def stop(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
