"""Ground-truth model error against SMAX (rllib_mag.analysis.model_error): replay, scoring, statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from rllib_mag.analysis.model_error import (ModelErrorConfig, Networks, Prediction, Replay, _row_spearman,
                                            accumulated, collect_starts, evaluate_model_error, imagine_predictions,
                                            replay, true_errors)
from rllib_mag.envs.smax import SMAXBackend
from rllib_mag.envs.team import TeamView
from rllib_mag.models import Actor, WorldModel, from_preset
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig

K = 6
PLANNING = PlanningConfig(rollout_length_k=K, planning_horizon_H=3, planning_candidates_L=3)


@pytest.fixture(scope="module")
def view():
    return TeamView(SMAXBackend("3s_vs_3z", seed=0))


@pytest.fixture(scope="module")
def networks(view):
    torch.manual_seed(0)
    cfg = from_preset("small")
    return Networks(WorldModel(cfg, view.obs_dim, view.n_actions), Actor(cfg, view.n_actions),
                    ModelRewardPredictor(cfg))


@pytest.fixture(scope="module")
def starts(view, networks):
    return collect_starts(view, networks, num_starts=8, keep_probability=0.3, seed=1)


def test_replaying_the_played_actions_reproduces_the_real_episode(view):
    """snapshot/restore: the same actions from a kept state give the same observations and rewards."""
    view.reset(seed=3)
    rng = np.random.default_rng(0)

    def random_valid_action():
        mask = view.backend.get_avail_actions()
        return np.array([rng.choice(np.flatnonzero(row)) for row in mask])

    for _ in range(3):
        view.step(random_valid_action())
    snapshot = view.backend.snapshot()
    played = []
    for _ in range(5):
        action = random_valid_action()
        obs, reward, *_ = view.step(action)
        played.append((action, obs["obs"], reward))
    view.backend.restore(snapshot)
    for action, obs, reward in played:
        replayed, replayed_reward, *_ = view.step(action)
        np.testing.assert_array_equal(replayed["obs"], obs)
        assert replayed_reward == reward


def test_oracle_prediction_has_zero_error_and_a_perturbed_one_the_exact_huber(view, networks, starts):
    """The 'model' that predicts the simulator's own observations and rewards scores 0; shifting its observations by
    0.1 scores Huber(0.1) = 0.005 per step, its rewards by 0.5 adds Huber(0.5) = 0.125."""
    imagined = imagine_predictions(networks, starts, PLANNING, seed=0)
    first = replay(view, starts, imagined.actions)
    second = replay(view, starts, imagined.actions)
    for name in ("obs", "reward", "alive", "active", "invalid"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.active[:, 0].all() and first.obs.shape == (8, K, view.n_agents, view.obs_dim)
    oracle = Prediction(imagined.actions, first.obs.copy(), np.repeat(first.reward[..., None], view.n_agents, -1),
                        imagined.rm_error)
    errors = true_errors(oracle, second)
    assert np.all(errors["total"] == 0.0)
    shifted = dataclasses.replace(oracle, obs=oracle.obs + 0.1, reward=oracle.reward + 0.5)
    errors = true_errors(shifted, second)
    active = second.active
    np.testing.assert_allclose(errors["obs"][active], 0.005, rtol=1e-4)
    np.testing.assert_allclose(errors["reward"][active], 0.125, rtol=1e-4)
    assert np.all(errors["total"][~active] == 0.0)


def test_error_averages_over_agents_alive_in_the_simulator():
    truth = Replay(obs=np.zeros((1, 1, 2, 1), np.float32), reward=np.zeros((1, 1), np.float32),
                   alive=np.array([[[1.0, 0.0]]], np.float32), active=np.array([[True]]),
                   invalid=np.zeros((1, 1, 2), bool))
    prediction = Prediction(np.zeros((1, 1, 2), np.int64), np.array([[[[0.2], [5.0]]]], np.float32),
                            np.zeros((1, 1, 2), np.float32), np.zeros((1, 1), np.float32))
    np.testing.assert_allclose(true_errors(prediction, truth)["obs"], [[0.02]], rtol=1e-5)  # the dead agent is out


def test_accumulated_error_is_the_cumulative_mean_over_counting_starts():
    errors = np.array([[1.0, 2.0, 4.0], [3.0, 9.0, 9.0]])
    active = np.array([[True, True, True], [True, False, False]])
    np.testing.assert_allclose(accumulated(errors, active), [2.0, 4.0, 8.0])
    resampled = accumulated(errors, active, np.array([[0, 0], [1, 1]]))
    np.testing.assert_allclose(resampled, [[1.0, 3.0, 7.0], [3.0, 3.0, 3.0]])


def test_row_spearman_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = [spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(_row_spearman(x, y, np.ones(5, bool)), expected, atol=1e-12)
    constant = _row_spearman(np.ones((1, 4)), y[:1, :4], np.ones(1, bool))
    assert np.isnan(constant).all()
    np.testing.assert_allclose(_row_spearman(x, 2 * x + 1, np.array([True] * 4 + [False]))[:4], 1.0)


def test_evaluation_is_deterministic_under_a_seed_and_compares_modes_on_the_same_starts(view, networks):
    cfg = ModelErrorConfig(num_starts=6, rank_candidates=4, bootstrap_samples=50, seed=2)
    a = evaluate_model_error(view, networks, PLANNING, cfg)
    b = evaluate_model_error(view, networks, PLANNING, cfg)
    assert a.to_dict() == b.to_dict()
    c = evaluate_model_error(view, networks, PLANNING, dataclasses.replace(cfg, seed=3))
    assert c.modes["mag"].accumulated["total"] != a.modes["mag"].accumulated["total"]
    for mode in ("mag", "mamba"):
        result = a.modes[mode]
        total = result.accumulated["total"]
        assert len(total) == K and np.all(np.diff(total) >= 0)
        assert all(lo <= mean <= hi for mean, (lo, hi) in zip(total, result.accumulated_ci["total"]))
        np.testing.assert_allclose(total, np.add(result.accumulated["obs"], result.accumulated["reward"]), rtol=1e-5)
        assert result.counting_fraction[0] == 1.0
    for part in ("total", "rm"):
        np.testing.assert_allclose(a.difference[part], np.subtract(a.modes["mamba"].accumulated[part],
                                                                   a.modes["mag"].accumulated[part]))
    assert -1.0 <= a.rm_spearman <= 1.0 and 0 < a.rm_spearman_starts <= 6
    assert set(a.metrics("mag")) >= {"true_step_01", f"true_step_{K:02d}", "rm_spearman", f"rm_step_{K:02d}"}


def test_backends_that_cannot_restore_a_state_are_rejected(networks):
    from rllib_mag.envs.pettingzoo import PettingZooBackend

    view = TeamView(PettingZooBackend("simple_spread"))
    with pytest.raises(ValueError, match="needs a simulator whose state can be kept and restored .* the "
                                         "PettingZooBackend backend cannot restore a state"):
        collect_starts(view, networks, 2, 1.0, 0)


@pytest.mark.parametrize("bad", [dict(num_starts=0), dict(rank_candidates=1), dict(keep_probability=0.0),
                                 dict(bootstrap_samples=2.5)])
def test_config_errors(bad):
    with pytest.raises(ValueError, match="ModelErrorConfig"):
        ModelErrorConfig(**bad)


def test_forbidden_imagined_actions_reach_smax_unchanged(view, networks, starts):
    """`replay` hands an action the mask forbids to SMAX as it is (no effect on the dynamics, but the same
    observation features as SMAX computes for it) and counts it."""
    actions = np.full((len(starts.snapshots), 2, view.n_agents), 4)  # stop: always allowed
    view.backend.restore(starts.snapshots[0])
    forbidden = np.flatnonzero(view.backend.get_avail_actions()[0] == 0)
    assert forbidden.size
    actions[0, 0, 0] = forbidden[0]
    truth = replay(view, starts, actions)
    assert truth.invalid[0, 0, 0] and truth.invalid.sum() == 1
    view.backend.restore(starts.snapshots[0])
    with pytest.raises(ValueError, match="not available"):
        view.step(actions[0, 0])
    view.backend.restore(starts.snapshots[0])
    expected, *_ = view.step(actions[0, 0], check_mask=False)
    np.testing.assert_array_equal(truth.obs[0, 0], expected["obs"])


def test_oracle_selection_keeps_the_truly_best_candidate(view, networks, starts):
    """Choosing among more candidates by their true one-step error can only lower the true error it reports."""
    from rllib_mag.analysis.model_error import oracle_selection

    totals = {}
    for n in (1, 6):
        planning = dataclasses.replace(PLANNING, planning_candidates_L=n)
        prediction, truth = oracle_selection(view, networks, starts, planning, 0)
        np.testing.assert_array_equal(replay(view, starts, prediction.actions).obs, truth.obs)  # lockstep == replay
        totals[n] = accumulated(true_errors(prediction, truth)["total"], truth.active)[-1]
    assert totals[6] < totals[1]


def test_a_step_with_no_agent_left_alive_does_not_count(view):
    """A lost battle's last observation has no alive agent to score: that step is not counted."""
    from rllib_mag.analysis.model_error import _empty_replay, _record

    truth = _empty_replay(1, 2, view)
    n = view.n_agents
    _record(truth, 0, 0, {"obs": np.ones((n, view.obs_dim)), "alive": np.array([1.0] + [0.0] * (n - 1))}, 1.0,
            np.zeros(n, bool))
    _record(truth, 0, 1, {"obs": np.zeros((n, view.obs_dim)), "alive": np.zeros(n)}, 0.0, np.zeros(n, bool))
    assert truth.active.tolist() == [[True, False]] and truth.reward[0, 0] == 1.0
