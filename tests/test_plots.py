"""`rllib plot` (`rllib_mag.plots`): curves read from Tune's result.json, the rolling mean, and the PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rllib_mag.plots import plot_trials, read_curve, rolling_mean, trial_dirs


def write_trial(path, returns):
    path.mkdir(parents=True)
    lines = [json.dumps({"num_env_steps_sampled_lifetime": 50 * (i + 1),
                         "env_runners": {"episode_return_mean": r, "win_rate": float("nan")},
                         "world_model": {"model_loss": 1.0 / (i + 1)}}) for i, r in enumerate(returns)]
    (path / "result.json").write_text("\n".join(lines) + "\n")


def test_rolling_mean_averages_the_last_points():
    np.testing.assert_allclose(rolling_mean(np.array([1.0, 3.0, 5.0, 7.0]), points=2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(rolling_mean(np.arange(5.0), points=10), [0.0, 0.5, 1.0, 1.5, 2.0])


def test_curves_skip_missing_values_and_the_png_is_written(tmp_path):
    write_trial(tmp_path / "exp" / "trial_a", [1.0, 2.0, 3.0])
    write_trial(tmp_path / "exp" / "trial_b", [4.0, 5.0])
    curve = read_curve(tmp_path / "exp" / "trial_a")
    assert curve["episode return"] == [(50.0, 1.0), (100.0, 2.0), (150.0, 3.0)]
    assert curve["win rate"] == []  # NaN every iteration: nothing to draw
    assert [p.name for p in trial_dirs(tmp_path / "exp")] == ["trial_a", "trial_b"]
    assert trial_dirs(tmp_path / "exp" / "trial_b") == [tmp_path / "exp" / "trial_b"]
    png = plot_trials(tmp_path / "exp")
    assert png == tmp_path / "exp" / "learning_curves.png" and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="holds no result.json"):
        trial_dirs(tmp_path)
