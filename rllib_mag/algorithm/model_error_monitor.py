"""True model error during training (`model_error_eval_interval`): the driver measures the current world model,
actor and R_m against the SMAX simulator (`rllib_mag.analysis.model_error`) every few iterations."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from rllib_mag.algorithm.catalog import MAGCatalog
from rllib_mag.analysis.model_error import ModelErrorConfig, Networks, evaluate_model_error
from rllib_mag.envs.team import TeamView
from rllib_mag.planning.imagination import PlanningConfig

#: Env names whose simulator can keep and restore a state (needed to replay imagined actions).
RESTORABLE_ENVS = ("smax_team",)
#: Bootstrap resamples for the logged intervals (the training metrics log means; keep this cheap).
BOOTSTRAP_SAMPLES = 200


class ModelErrorMonitor:
    """Holds CPU copies of the rollout networks and a SMAX env; `evaluate` logs `true_step_NN` (true accumulated
    error at imagined step NN in the config's mode), `rm_step_NN` (R_m's estimate of it) and `rm_spearman`."""

    def __init__(self, config: Any, observation_space: gym.spaces.Dict, planning: PlanningConfig) -> None:
        catalog = MAGCatalog(observation_space, config.world_model_settings())
        self.networks = Networks(catalog.build_world_model(), catalog.build_actor(), catalog.build_model_reward())
        self.view = TeamView.from_config({**config.env_config, "backend": "smax"})
        self.planning, self.mode = planning, config.mode
        self.eval_config = ModelErrorConfig(num_starts=config.model_error_eval_starts,
                                            bootstrap_samples=BOOTSTRAP_SAMPLES, seed=config.seed or 0)

    def evaluate(self, weights: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
        for name, network in self.networks._asdict().items():
            network.load_state_dict(weights[name])
        report = evaluate_model_error(self.view, self.networks, self.planning, self.eval_config, modes=(self.mode,))
        return report.metrics(self.mode)
