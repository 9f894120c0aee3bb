"""`MAG`: Algorithm 1 of the paper as an RLlib `Algorithm` (new API stack).

One `training_step`:

1. env runners play with the acting module until `episodes_per_iteration` more episodes are complete; they go
   into D_e (line 3);
2. per learner update (one per collected episode, or `training_ratio` per env step):
   the learner trains the world model (line 4) and R_m (line 5) on D_e sequences; then, `policy_rounds` times,
   k-step trajectories are imagined with random-shooting MPC from D_e start states (lines 6-15) into the
   learners' D_m, by the learners themselves (`num_model_rollout_actors: 0`) or by model-rollout actors whose
   batches go from the object store to the learners, and the learner runs PPO on D_m (lines 16-18). With
   `num_learners > 1` every batch is cut into one shard per learner and the learners average their gradients
   (data parallel);
3. every `model_error_eval_interval` iterations (SMAX), the true model error of imagination is measured against
   the simulator (`model_error/*`);
4. the acting weights go back to the env runners.
"""

from __future__ import annotations

import functools
import math
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, TIMERS
from ray.tune.execution.placement_groups import PlacementGroupFactory

from rllib_mag.algorithm.catalog import TeamSpaces
from rllib_mag.algorithm.config import MAGConfig
from rllib_mag.algorithm.learner import SKIPPED_STEPS, mean_metrics
from rllib_mag.algorithm.replay import EpisodeAssembler, SequenceReplayBuffer
from rllib_mag.algorithm.model_error_monitor import ModelErrorMonitor
from rllib_mag.algorithm.rollout_actor import RolloutActorPool
from rllib_mag.checkpoints import CheckpointError, check_files, unreadable_file

#: Env steps each env copy takes per `sample()` call (a call returns chunks; D_e takes whole episodes).
SAMPLE_STEPS_PER_ENV = 25


def _sample_or_error(runner: Any, num_timesteps: int, force_reset: frozenset[int]
                     ) -> tuple[int, list[Any], dict[str, Any] | None, str | None]:
    """One `sample()` call on an env runner: `(runner index, episode chunks, its metrics, None)`, or
    `(index, [], None, traceback)` when its env raised. A runner listed in `force_reset` starts fresh episodes."""
    index = runner.worker_index or 0
    try:
        chunks = runner.sample(num_timesteps=num_timesteps, force_reset=index in force_reset)
        return index, chunks, runner.get_metrics(), None
    except Exception:  # the env's own error, reported by the driver if sampling keeps failing
        return index, [], None, traceback.format_exc(limit=-8)


def _check_gpus_exist(config: MAGConfig) -> None:
    """Fail before any actor starts when the config asks for GPUs and the Ray cluster has none: the actors
    would otherwise wait for them forever (a Tune trial starts only once its GPU bundles are placed)."""
    asked = {key: getattr(config, key) for key in ("num_gpus_per_learner", "num_gpus_per_rollout_actor",
                                                    "num_gpus_per_env_runner") if getattr(config, key) > 0}
    if not asked:
        return
    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else torch.cuda.device_count()
    if gpus == 0:
        settings = ", ".join(f"{key}={value}" for key, value in asked.items())
        raise ValueError(f"{settings} asks for GPUs, but the Ray cluster has none (ray.cluster_resources() shows no "
                         "'GPU'); set these to 0 to train on CPU, or start Ray on a machine with a GPU")


def _is_local(filesystem: Any) -> bool:
    """Whether a checkpoint's (pyarrow) `filesystem` is this machine's disk (None: a local path)."""
    return filesystem is None or type(filesystem).__name__ == "LocalFileSystem"


def _raise_if_damaged(path: Path, err: Exception) -> None:
    """After a failed restore: raise `CheckpointError` naming the file under `path` that does not load, if any."""
    damaged = unreadable_file(path)
    if damaged is not None:
        file, cause = damaged
        raise CheckpointError(f"checkpoint {path} is damaged: {file.relative_to(path)} does not load "
                              f"({type(cause).__name__}: {cause}); restore an earlier checkpoint_NNNNNN folder"
                              ) from err


class MAG(Algorithm):
    """Models as Agents (Wu et al., AAAI 2023) on top of MAMBA's world model."""

    config: MAGConfig

    @classmethod
    def get_default_config(cls) -> MAGConfig:
        return MAGConfig()

    @classmethod
    def default_resource_request(cls, config: MAGConfig | dict) -> PlacementGroupFactory:
        """RLlib's bundles plus one bundle per model-rollout actor, so Tune and clusters can schedule them."""
        if isinstance(config, dict):
            config = cls.get_default_config().update_from_dict(config)
        factory = super().default_resource_request(config)
        rollout_bundles = [{"CPU": config.num_cpus_per_rollout_actor, "GPU": config.num_gpus_per_rollout_actor}
                           for _ in range(config.num_model_rollout_actors)]
        return PlacementGroupFactory(bundles=factory.bundles + rollout_bundles, strategy=config.placement_strategy)

    def setup(self, config: MAGConfig) -> None:
        _check_gpus_exist(config)
        super().setup(config)
        observation_space = self.env_runner_group.get_spaces()[DEFAULT_MODULE_ID][0]
        spaces = TeamSpaces.from_space(observation_space)
        self.real_buffer = SequenceReplayBuffer(config.replay_capacity, spaces.n_agents, spaces.obs_dim,
                                                spaces.n_actions)
        self.synthetic_buffer_transitions = 0  # D_m lives on the learners; its size as they last reported it
        self.episode_assembler = EpisodeAssembler()
        self.rng = np.random.default_rng(config.seed)
        self.rollout_pool = RolloutActorPool(config, observation_space)
        self.model_error_monitor = (ModelErrorMonitor(config, observation_space, config.planning_settings())
                                    if config.model_error_eval_interval > 0 else None)
        self.update_credit = 0.0  # learner updates owed but not yet run (`training_ratio`)
        self.num_sample_errors = 0  # env-runner sample() calls whose env raised, lifetime
        self._reset_runners: set[int] = set()  # runners whose env raised: they reset their envs next call
        self._failed_sample_rounds, self._last_sample_error = 0, None
        self.num_learner_updates = 0
        self.num_synthetic_transitions = 0

    # ---- Algorithm 1 ----------------------------------------------------------------------------
    def training_step(self) -> None:
        config = self.config
        env_steps, warm_env_steps, num_episodes, sample_time = 0, 0, 0, 0.0
        warmup_rows = max(config.warmup_steps, config.batch_length_T)
        while num_episodes < config.episodes_per_iteration or len(self.real_buffer) < warmup_rows:
            start = time.perf_counter()
            with self._phase("sample"):
                chunks = self._sample_chunks()  # line 3: (env runner index, chunk) pairs
            sample_time += time.perf_counter() - start
            warm = len(self.real_buffer) >= warmup_rows  # warm-up data earns no learner updates
            chunk_steps = sum(len(chunk) for _, chunk in chunks)
            env_steps += chunk_steps
            warm_env_steps += chunk_steps * warm
            for source, chunk in chunks:
                episode = self.episode_assembler.add(chunk, source)
                if episode is not None:
                    self.real_buffer.add_episode(episode["observations"], episode["actions"], episode["rewards"],
                                                 episode["terminated"])
                    num_episodes += warm
        self.metrics.log_value(("throughput", "env_steps_per_s"), env_steps / max(sample_time, 1e-9))
        self.update_credit += (config.training_ratio * warm_env_steps if config.training_ratio is not None
                               else num_episodes)
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            self._learner_update()
        if self.model_error_monitor is not None and (self.iteration + 1) % config.model_error_eval_interval == 0:
            with self._phase("model_error_eval"):
                weights = next(w for w in self._on_learners("rollout_weights") if w is not None)
                self.metrics.log_dict(self.model_error_monitor.evaluate(weights), key="model_error", window=1)
        with self._phase("sync_weights"):
            self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
        self.metrics.log_dict({"real_buffer_rows": len(self.real_buffer),
                               "synthetic_buffer_transitions": self.synthetic_buffer_transitions,
                               "num_learner_updates_lifetime": self.num_learner_updates,
                               "num_synthetic_transitions_lifetime": self.num_synthetic_transitions,
                               "num_rollout_actor_restarts": self.rollout_pool.num_restarts,
                               "num_env_runner_restarts": self._counters["total_num_restored_workers"],
                               "num_sample_errors_lifetime": self.num_sample_errors,
                               "num_partial_episodes_dropped": self.episode_assembler.num_dropped},
                              key="mag", window=1)

    def _phase(self, name: str) -> Any:
        """Timer context: `timers/<name>` is the wall-clock seconds spent in that phase this iteration."""
        return self.metrics.log_time((TIMERS, name), reduce="sum")

    def _sample_chunks(self) -> list[tuple[int, Any]]:
        """Episode chunks of `SAMPLE_STEPS_PER_ENV` steps per env copy from every env runner, each with the index
        of its runner (metrics logged).

        Sampling by steps, not whole episodes, keeps vectorized env copies running across calls, so no partial
        episode is thrown away; `EpisodeAssembler` joins the chunks. Faults (Algorithm 1 line 3 must not loop
        forever): a runner whose env raised resets its envs on the next call and loses its unfinished episodes;
        a runner that died is restored in place (RLlib restarts the actor) and loses them too; after
        `max_consecutive_sample_failures` rounds without any data the trial fails with the env's own error.
        """
        group = self.env_runner_group
        remote = group.num_remote_env_runners()
        num_steps = SAMPLE_STEPS_PER_ENV * max(self.config.num_envs_per_env_runner, 1)
        results = group.foreach_env_runner(
            functools.partial(_sample_or_error, num_timesteps=num_steps, force_reset=frozenset(self._reset_runners)),
            local_env_runner=remote == 0)
        failed = [(index, error) for index, _, _, error in results if error is not None]
        self._reset_runners = {index for index, _ in failed}
        for index, _ in failed:
            self.episode_assembler.drop_source(index)
        self.num_sample_errors += len(failed)
        ok = [(index, chunks, metrics) for index, chunks, metrics, error in results if error is None]
        if remote and group.num_healthy_remote_workers() < remote:  # a runner died: bring it back now
            self._restore_env_runners(wait=not ok)
        self._check_sampling_progress(bool(ok), failed[-1][1] if failed else None)
        self.metrics.aggregate([metrics for _, _, metrics in ok], key=ENV_RUNNER_RESULTS)
        return [(index, chunk) for index, chunks, _ in ok for chunk in chunks]

    def _restore_env_runners(self, wait: bool) -> None:
        """Restore dead env runners once Ray has restarted them (`restore_env_runners`: ping, sync state and
        weights) and drop their unfinished episodes. With `wait` (no runner is left) keep trying for up to
        `env_runner_health_probe_timeout_s`: a restart takes seconds."""
        group = self.env_runner_group
        deadline = time.monotonic() + self.config.env_runner_health_probe_timeout_s
        while True:
            for index in self.restore_env_runners(group):
                self.episode_assembler.drop_source(index)
            if not wait or group.num_healthy_remote_workers() > 0 or time.monotonic() > deadline:
                return
            time.sleep(0.5)

    def _check_sampling_progress(self, got_data: bool, last_error: str | None) -> None:
        """Count sampling rounds without any data; fail the trial after `max_consecutive_sample_failures`."""
        self._failed_sample_rounds = 0 if got_data else self._failed_sample_rounds + 1
        if last_error is not None:
            self._last_sample_error = last_error
        limit = self.config.max_consecutive_sample_failures
        if self._failed_sample_rounds >= limit:
            cause = (f"the last env error:\n{self._last_sample_error}" if self._last_sample_error else
                     "every env runner is down and could not be restored (see the env runners' logs)")
            raise RuntimeError(f"no env runner returned data in {limit} sampling rounds in a row "
                               f"(max_consecutive_sample_failures={limit}); {cause}")

    def _on_learners(self, method: str, shards: list[Any] | None = None) -> list[Any]:
        """Call `MAGTorchLearner.<method>` on every learner, with one shard per learner if given; their results.

        Remote learners get the shards through the object store and each fetches only its own.
        """
        if shards is not None and not self.learner_group.is_local:
            shards = [ray.put(shard) for shard in shards]
        args = () if shards is None else (shards,)
        results = [result.get() for result in
                   self.learner_group.foreach_learner(lambda learner: getattr(learner, method)(*args))]
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _real_batches(self, count: int, batch_size: int) -> list[dict[str, np.ndarray]]:
        return [self.real_buffer.sample(batch_size, self.config.batch_length_T, self.rng) for _ in range(count)]

    def _learner_update(self) -> None:
        """Lines 4-18 of Algorithm 1 (one outer-loop update); each learner trains on its shard of every batch."""
        config = self.config
        num_shards = max(config.num_learners, 1)
        shard_size = config.batch_size_B // num_shards
        with self._phase("model_training"):
            model_metrics = self._on_learners("train_models", [
                (self._real_batches(config.world_model_train_steps, shard_size),
                 self._real_batches(config.model_reward_train_steps, shard_size)) for _ in range(num_shards)])
        self._log_update_metrics(model_metrics, "world_model")
        for _ in range(config.policy_rounds):
            start = time.perf_counter()
            with self._phase("imagination"):
                planner = self._imagine()  # transitions imagined this round
            self.metrics.log_value(("throughput", "synthetic_transitions_per_s"),
                                   planner / (time.perf_counter() - start))
            with self._phase("policy_training"):
                policy_metrics = self._on_learners("train_policy")
            self._log_update_metrics(policy_metrics, "policy")
        self.num_learner_updates += 1

    def _log_update_metrics(self, learner_metrics: list[dict[str, float]], key: str) -> None:
        """The learners' mean metrics under `key`; skipped-step counts (the same on every learner) as lifetime
        totals (`<key>/*num_nonfinite_skipped`)."""
        metrics = mean_metrics(learner_metrics)
        for name in [name for name in metrics if name.endswith(SKIPPED_STEPS)]:
            self.metrics.log_value((key, name), metrics.pop(name), reduce="sum")
        self.metrics.log_dict(metrics, key=key)

    def _imagine(self) -> int:
        """Lines 6-15 into the learners' D_m: each learner imagines its shard of M on its own networks
        (`num_model_rollout_actors: 0`), or the rollout actors share M and the learners fetch their batches from
        the object store. Logs the planner statistics (the paper's Fig. 3 quantity by step) and compile time."""
        config = self.config
        num_jobs = config.num_model_rollout_actors or max(config.num_learners, 1)  # one per actor, else per learner
        starts = [len(part) for part in np.array_split(np.arange(config.imagination_starts_M), num_jobs)]
        windows = [max(1, math.ceil(1.25 * m / config.batch_length_T)) for m in starts]
        seeds = [int(seed) for seed in self.rng.integers(2**31, size=num_jobs)]
        real_batches = [self._real_batches(1, w)[0] for w in windows]
        if config.num_model_rollout_actors == 0:
            results = self._on_learners("imagine", list(zip(real_batches, starts, seeds)))
            planner = mean_metrics(results)
            planner["num_synthetic_transitions"] = sum(r["num_synthetic_transitions"] for r in results)
        else:
            weights_ref = next(ref for ref in self._on_learners("rollout_weights_ref") if ref is not None)
            batch_refs, infos = self.rollout_pool.rollout(weights_ref, real_batches, starts, seeds)
            num_shards = max(config.num_learners, 1)
            planner = self._on_learners("add_synthetic", [batch_refs] * num_shards)[0]
            planner["compile_seconds"] = max(info["compile_seconds"] for info in infos)
        num_transitions = int(planner.pop("num_synthetic_transitions"))
        self.num_synthetic_transitions += num_transitions
        self.metrics.log_value((TIMERS, "imagination_compile"), planner.pop("compile_seconds"), reduce="sum")
        self.synthetic_buffer_transitions = int(planner.pop("synthetic_buffer_transitions")) * max(
            config.num_learners, 1)
        self.metrics.log_dict(planner, key="planning")
        return num_transitions

    # ---- checkpoints, export, cleanup -------------------------------------------------------------
    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().get_state(*args, **kwargs)
        state["mag"] = {
            "real_buffer": self.real_buffer.get_state(), "rng": self.rng.bit_generator.state,
            "update_credit": self.update_credit, "num_learner_updates": self.num_learner_updates,
            "num_synthetic_transitions": self.num_synthetic_transitions,
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "mag" not in state:
            return
        mag = state["mag"]
        self.real_buffer.set_state(mag["real_buffer"])
        self.rng.bit_generator.state = mag["rng"]
        self.update_credit = mag["update_credit"]
        self.num_learner_updates = mag["num_learner_updates"]
        self.num_synthetic_transitions = mag["num_synthetic_transitions"]

    @classmethod
    def from_checkpoint(cls, path: str | Path, *args: Any, **kwargs: Any) -> "MAG":
        """RLlib's `Algorithm.from_checkpoint`, with the checks of `restore_from_path` also on the files read
        before the algorithm exists (`class_and_ctor_args.pkl`)."""
        if args or not _is_local(kwargs.get("filesystem")) or not isinstance(path, (str, Path)):
            return super().from_checkpoint(path, *args, **kwargs)
        check_files(path)
        try:
            return super().from_checkpoint(path, **kwargs)
        except CheckpointError:
            raise
        except Exception as err:
            _raise_if_damaged(Path(path), err)
            raise

    def restore_from_path(self, path: str | Path, *args: Any, component: str | None = None, **kwargs: Any) -> None:
        """RLlib's restore, refusing a checkpoint with a missing or damaged file (`rllib_mag.checkpoints`) with an
        error that names it, where RLlib would skip the component or raise a bare `UnpicklingError`."""
        if component is not None:  # a single component: RLlib's own handling
            super().restore_from_path(path, *args, component=component, **kwargs)
            return
        if not _is_local(kwargs.get("filesystem")):  # remote storage: the files are not here to check
            super().restore_from_path(path, *args, **kwargs)
            return
        check_files(path)
        try:
            super().restore_from_path(path, *args, **kwargs)
        except Exception as err:
            _raise_if_damaged(Path(path), err)
            raise

    def export_policy(self, path: str | Path) -> Path:
        """Save the acting module alone (world-model filter + actor, no critic or R_m) for evaluation.

        Load it with `ray.rllib.core.rl_module.RLModule.from_checkpoint(path)`.
        """
        path = Path(path).resolve()
        module = self.env_runner.module if self.env_runner is not None else None
        if module is None:
            raise RuntimeError("this algorithm has no local env runner module to export")
        self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
        module.save_to_path(str(path))
        return path

    def cleanup(self) -> None:
        self.rollout_pool.stop()
        super().cleanup()
