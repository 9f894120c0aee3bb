"""Fixtures of the learning tests: an imagined batch and the networks that made it (one set per test module)."""

import pytest
import torch

from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, imagine

#: Observation size, actions and agents of the learning tests.
D, A, N = 6, 4, 3


@pytest.fixture(scope="module")
def setup():
    """`(world-model config, actor, critic, SyntheticBatch)`: k=5 imagined steps from 24 start states."""
    torch.manual_seed(0)
    cfg = from_preset("small")
    wm, actor, critic, rm = WorldModel(cfg, D, A), Actor(cfg, A), AttentionCritic(cfg), ModelRewardPredictor(cfg)
    with torch.no_grad():
        start = wm.loss(random_sequence_batch(6, 4, N, D, A)).posterior.map(lambda x: x.flatten(0, 1))
    plan = PlanningConfig(rollout_length_k=5, planning_horizon_H=2, planning_candidates_L=2)
    batch = imagine(wm, actor, critic, rm, start, plan, torch.Generator().manual_seed(0))
    return cfg, actor, critic, batch
