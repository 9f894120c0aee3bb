"""`torch.compile` of the imagined step: the same synthetic batch as the eager step under one seed (tiny preset),
compile time reported once per input shape, and an eager fallback with one warning where compiling cannot work."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rllib_mag import compilation
from rllib_mag.compilation import Compiled
from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, imagine
from rllib_mag.planning.imagination import imagined_step

D, A, N, M = 6, 4, 3, 8
TINY = dict(hidden=16, embed=16, deter=16, n_categoricals=4, n_classes=4, attn_ff=16, head_hidden=16)
#: Discrete outputs (actions, masks, choices) must agree exactly; continuous ones to a few float32 ulps of the
#: fused kernels' different summation orders and exp implementations.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = from_preset("small", **TINY)
    nets = WorldModel(cfg, D, A), Actor(cfg, A), AttentionCritic(cfg), ModelRewardPredictor(cfg)
    with torch.no_grad():
        start = nets[0].filter(random_sequence_batch(4, 2, N, D, A))[0].map(lambda x: x.flatten(0, 1))
    return nets, start


def test_compiled_imagination_equals_eager(setup):
    nets, start = setup
    plan = PlanningConfig(rollout_length_k=3, planning_horizon_H=2, planning_candidates_L=3)
    step = Compiled(imagined_step, enabled=True)
    eager = imagine(*nets, start, plan, torch.Generator().manual_seed(4))
    compiled = imagine(*nets, start, plan, torch.Generator().manual_seed(4), step)
    assert step.enabled, "compilation fell back to eager"
    first_compile = step.take_compile_seconds()
    again = imagine(*nets, start, plan, torch.Generator().manual_seed(4), step)
    assert first_compile > 0 and step.take_compile_seconds() == 0.0  # same shapes: no new compilation
    for field in dataclasses.fields(eager):
        a, b, c = (getattr(x, field.name) for x in (eager, compiled, again))
        assert a.dtype == b.dtype and a.shape == b.shape, field.name
        if a.dtype.is_floating_point:
            torch.testing.assert_close(b, a, equal_nan=True, **TOLERANCE, msg=field.name)
        else:
            assert torch.equal(a, b), field.name
        assert torch.equal(b, c), field.name  # the compiled step is deterministic under a seed


def test_no_cpp_compiler_falls_back_to_eager_with_one_warning(setup, monkeypatch):
    nets, start = setup
    monkeypatch.setattr(compilation, "cpp_compiler", lambda: None)
    step = Compiled(imagined_step, enabled=True, name="the imagination step")
    plan = PlanningConfig(rollout_length_k=2, planning_horizon_H=2, planning_candidates_L=2)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found") as record:
        fallback = imagine(*nets, start, plan, torch.Generator().manual_seed(0), step)
    assert len(record) == 1 and not step.enabled and step.compile_seconds == 0.0
    eager = imagine(*nets, start, plan, torch.Generator().manual_seed(0))
    assert torch.equal(fallback.features, eager.features)


def test_a_failing_backend_falls_back_to_eager(monkeypatch):
    def broken(*args):
        raise RuntimeError("backend exploded")

    step = Compiled(lambda x: x + 1, enabled=True, name="f")
    step._compiled = broken
    with pytest.warns(RuntimeWarning, match="torch.compile of f is off, running eagerly: RuntimeError: backend"):
        assert step(torch.ones(2)).tolist() == [2.0, 2.0]
    assert not step.enabled
    assert Compiled(lambda x: x, enabled=False)(torch.ones(1)).item() == 1.0
