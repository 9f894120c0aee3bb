"""benchmarks/learning_curves.py: result files, skipping finished runs, and the rliable aggregate."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from script_modules import load_module

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "learning_curves.py"


def fake_result(curves, algo: str, map_name: str, seed: int, win_rates: list[float], eval_every: int = 10):
    """A result file's record with the given greedy win rate at 0, eval_every, 2 x eval_every, ..."""
    steps = eval_every * (len(win_rates) - 1)
    (run,) = [r for r in curves.make_runs([map_name], [algo], seed + 1, steps, eval_every, 4, {}) if r.seed == seed]
    evaluations = [{"target_steps": i * eval_every, "env_steps": i * eval_every + 3, "episodes": 4,
                    "win_rate": w, "team_return": 10 * w, "episode_len": 30.0} for i, w in enumerate(win_rates)]
    return run, {**run.settings(), "evaluations": evaluations, "training": [], "iterations": 5,
                 "learner_updates": 2, "phase_s": dict.fromkeys(curves.PHASES, 1.0), "elapsed_s": 60.0}


def test_result_files_are_written_whole_and_checked_against_the_run_settings(curves, tmp_path):
    run, record = fake_result(curves, "mag", "3s_vs_3z", 0, [0.0, 0.5])
    path = tmp_path / f"{run.name}.json"
    assert not curves.is_finished(path, run)
    curves.write_result(path, record)
    assert curves.is_finished(path, run) and [p.name for p in tmp_path.iterdir()] == [path.name]
    other, _ = fake_result(curves, "mag", "3s_vs_3z", 0, [0.0, 0.5, 0.5])  # another budget
    assert not curves.is_finished(path, other)
    changed = curves.make_runs(["3s_vs_3z"], ["mag"], 1, run.steps, run.eval_every, run.eval_episodes,
                               {"training_ratio": 0.5})[0]
    assert not curves.is_finished(path, changed)


def test_runs_go_seed_by_seed_and_none_starts_after_the_time_limit(curves, tmp_path, capsys):
    runs = curves.make_runs(["3s_vs_3z", "2s3z"], ["mag", "mamba", "ppo"], 2, 40, 20, 4, {})
    assert [run.name for run in runs[:6]] == [f"{algo}_3s_vs_3z_seed{seed}" for seed in (0, 1)
                                             for algo in ("mag", "mamba", "ppo")]
    assert [run.map_name for run in runs] == ["3s_vs_3z"] * 6 + ["2s3z"] * 6
    assert curves.run_all(runs, tmp_path, 2, False, start_until_s=0.0) == []
    assert "time limit reached: 12 runs not started (mag_3s_vs_3z_seed0, mamba_3s_vs_3z_seed0" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_training_bins_weight_by_episodes_and_leave_out_missing_metrics(curves):
    bins = curves.TrainingBins()
    bins.add(400, {"episodes": 1, "win_rate": 1.0, "team_return": 20.0})
    bins.add(900, {"episodes": 3, "win_rate": 0.0, "team_return": None})
    bins.add(1001, {"episodes": 2, "win_rate": None, "team_return": 5.0})
    bins.add(1500, {"episodes": 0, "win_rate": None, "team_return": None})
    assert bins.rows() == [{"env_steps": 1000, "episodes": 4, "win_rate": 0.25, "team_return": 20.0},
                           {"env_steps": 2000, "episodes": 2, "win_rate": None, "team_return": 5.0}]


def test_iqm_is_the_mean_of_the_middle_half_and_the_interval_brackets_it(curves):
    scores = np.array([[0.0], [0.2], [0.4], [0.9], [1.0]])
    iqm, low, high = curves.iqm_interval(scores)
    assert iqm == pytest.approx(stats.trim_mean(scores.ravel(), 0.25)) == pytest.approx(0.5)
    assert 0.0 <= low < iqm < high <= 1.0
    assert curves.iqm_interval(np.full((5, 2), 0.3)) == pytest.approx((0.3, 0.3, 0.3))


@pytest.mark.parametrize("mag, mamba, expected, verdict", [
    ([0.6, 0.7, 0.8, 0.9, 1.0], [0.0, 0.1, 0.2, 0.3, 0.4], 1.0, "MAG ahead"),
    ([0.0, 0.1, 0.2, 0.3, 0.4], [0.6, 0.7, 0.8, 0.9, 1.0], 0.0, "MAG behind"),
    ([0.5] * 5, [0.5] * 5, 0.5, "no clear difference"),  # ties count half
])
def test_probability_of_improvement_and_verdict(curves, mag, mamba, expected, verdict):
    p = curves.improvement_interval(np.array(mag)[:, None], np.array(mamba)[:, None])
    assert p[0] == pytest.approx(expected) and p[1] <= p[0] <= p[2]
    assert curves.verdict(p, seeds=5) == verdict
    assert curves.verdict(p, seeds=4) == verdict
    assert curves.verdict(p, seeds=1) == "1 seed: too few for a verdict"
    assert curves.verdict(p, seeds=3) == "3 seeds: too few for a verdict"


def test_no_verdict_from_fewer_seeds_than_can_differ_significantly(curves):
    assert curves.fewest_seeds_for_a_verdict() == 4
    assert curves.fewest_seeds_for_a_verdict(alpha=0.2) == 3
    separated = curves.improvement_interval(np.array([[0.8], [0.9]]), np.array([[0.1], [0.2]]), reps=200)
    assert separated == pytest.approx((1.0, 1.0, 1.0))  # the bootstrap's zero-width interval from 2 seeds
    assert curves.verdict(separated, seeds=2) == "2 seeds: too few for a verdict"


def test_aggregate_rows_per_map_and_over_maps_and_the_report_plots(curves, tmp_path):
    rng = np.random.default_rng(0)
    for map_name in ("3s_vs_3z", "2s3z"):
        for algo, level in (("mag", 0.8), ("mamba", 0.2), ("ppo", 0.0)):
            for seed in range(5):
                run, record = fake_result(curves, algo, map_name, seed,
                                          [0.0, *np.clip(level + 0.1 * rng.standard_normal(4), 0, 1)])
                curves.write_result(tmp_path / f"{run.name}.json", record)
    (tmp_path / "mag_2s3z_seed9.partial.jsonl").write_text('{"event": "start"}\n')  # a run cut off: ignored
    results = curves.load_results(tmp_path)
    assert sorted(results) == [(m, a) for m in ("2s3z", "3s_vs_3z") for a in ("mag", "mamba", "ppo")]
    assert all([r["seed"] for r in records] == list(range(5)) for records in results.values())
    assert curves.report_points(40_000, 2_000) == [10_000, 20_000, 40_000]
    assert curves.report_points(40, 10) == [10, 20, 40]

    rows = curves.aggregate(results, [0, 40], reps=300)
    assert {(r["task"], r["env_steps"], r["metric"]) for r in rows} == {
        (task, point, metric) for task in ("2s3z", "3s_vs_3z", "all maps") for point in (0, 40)
        for metric in ("win_rate", "team_return", "win_rate_auc")}
    by_key = {(r["task"], r["env_steps"], r["metric"]): r for r in rows}
    final = by_key[("3s_vs_3z", 40, "win_rate")]
    mag_scores = [curves.score_at(record, "win_rate", 40) for record in results[("3s_vs_3z", "mag")]]
    assert final["mag"][0] == pytest.approx(stats.trim_mean(mag_scores, 0.25)) and final["mag"][3] == 5
    assert final["verdict"] == "MAG ahead" and by_key[("all maps", 40, "win_rate")]["verdict"] == "MAG ahead"
    assert by_key[("all maps", 0, "win_rate")]["p_mag_over_mamba"][0] == pytest.approx(0.5)  # all start at 0
    assert by_key[("2s3z", 40, "team_return")]["mamba"][0] == pytest.approx(
        10 * stats.trim_mean([curves.score_at(r, "win_rate", 40) for r in results[("2s3z", "mamba")]], 0.25))
    record = results[("3s_vs_3z", "mag")][0]
    curve = [e["win_rate"] for e in record["evaluations"]]
    assert curves.score_at(record, "win_rate_auc", 20) == pytest.approx(np.mean(curve[:3]))
    assert np.isnan(curves.score_at(record, "win_rate_auc", 25))  # no evaluation at 25
    mag_auc = [curves.score_at(r, "win_rate_auc", 40) for r in results[("3s_vs_3z", "mag")]]
    assert by_key[("3s_vs_3z", 40, "win_rate_auc")]["mag"][0] == pytest.approx(stats.trim_mean(mag_auc, 0.25))
    assert by_key[("3s_vs_3z", 0, "win_rate_auc")]["mag"][0] == 0.0
    table = curves.markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| all maps | 40 | greedy win rate |" in table

    script = subprocess.run([sys.executable, str(SCRIPT), "--plot-only", "--out", str(tmp_path), "--plot-dir",
                             str(tmp_path / "img"), "--reps", "100"], capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr[-3000:]
    assert "MAG ahead" in script.stdout and "| 2s3z | MAG | 5 | 40 | 1.0 min | 2 |" in script.stdout
    for name in ("3s_vs_3z", "2s3z", "profiles"):
        assert (tmp_path / "img" / f"learning_curves_{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_the_performance_profile_is_the_fraction_of_runs_above_each_threshold(curves):
    scores = np.array([[0.0, 0.3], [0.5, 0.55], [1.0, 0.95], [0.2, 0.8]])  # 4 seeds x 2 maps
    profile, interval = curves.win_rate_profile(scores, reps=200)
    expected = [(scores > tau).mean() for tau in curves.PROFILE_TAUS]
    assert profile == pytest.approx(expected) and profile[0] == pytest.approx(7 / 8) and profile[-1] == 0.0
    assert interval.shape == (2, len(curves.PROFILE_TAUS))
    assert np.all(interval[0] <= profile + 1e-12) and np.all(profile <= interval[1] + 1e-12)


def test_a_tiny_run_writes_its_evaluations_and_a_rerun_skips_it(tmp_path):
    tiny = {**load_module(REPO / "tests" / "algorithm" / "mag_tiny.py").TINY, "num_model_rollout_actors": 0,
            "training_ratio": 0.05}
    del tiny["env_config"]  # the map comes from --maps
    command = [sys.executable, str(SCRIPT), "--maps", "3s_vs_3z", "--algos", "mag", "--seeds", "1", "--steps",
               "120", "--eval-every", "60", "--eval-episodes", "2", "--out", str(tmp_path),
               "--plot-dir", str(tmp_path / "img"), "--reps", "100", "--mag-config", json.dumps(tiny)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    record = json.loads((tmp_path / "mag_3s_vs_3z_seed0.json").read_text())
    assert [e["target_steps"] for e in record["evaluations"]] == [0, 60, 120]
    assert [e["episodes"] for e in record["evaluations"]] == [2, 2, 2]
    assert [e["env_steps"] for e in record["evaluations"]][0] == 0
    assert all(e["env_steps"] >= e["target_steps"] for e in record["evaluations"])
    assert record["learner_updates"] >= 1 and record["config"]["training_ratio"] == 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "mag_3s_vs_3z_seed0.json"]  # no partial file
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already finished, skipped" in again.stdout


def test_bad_arguments_fail_before_any_run(tmp_path):
    for extra, message in ((["--seeds", "0"], "--seeds must be a positive integer"),
                           (["--maps", "3s_vs_3zz"], "3s_vs_3z"),
                           (["--mag-config", '{"planning_horizon": 3}'], "planning_horizon_H"),
                           (["--start-until", "-1"], "--start-until must be a number of minutes >= 0")):
        proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), *extra], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode != 0 and message in proc.stderr, (extra, proc.stderr[-2000:])
        assert not list(tmp_path.iterdir())


def test_paired_differences_pair_runs_by_seed_with_an_exact_sign_flip_test(curves):
    def records(algo, final_win_rates):
        return [fake_result(curves, algo, "3s_vs_3z", seed, [0.0, w])[1] for seed, w in enumerate(final_win_rates)]

    mag, mamba = records("mag", [0.9, 0.8, 0.7, 0.6, 0.5]), records("mamba", [0.4, 0.3, 0.9, 0.1, 0.5])
    paired = curves.paired_difference(mag, mamba[::-1], "win_rate", 10)  # paired by seed, not by position
    assert paired["by_seed"] == pytest.approx({0: 0.5, 1: 0.5, 2: -0.2, 3: 0.5, 4: 0.0})
    assert paired["mean"] == pytest.approx(0.26) and (paired["ahead"], paired["behind"]) == (3, 1)
    # exact: of the 2^5 sign patterns of (0.5, 0.5, -0.2, 0.5, 0), those with |sum| >= 1.3 are +-(0.5, 0.5, x, 0.5)
    # with x = -0.2 (|1.3|) or +0.2 (|1.7|), each with either sign of 0: 8 of 32
    assert paired["p"] == pytest.approx(8 / 32)
    separated = curves.paired_difference(mag, [dict(r, evaluations=[dict(e, win_rate=0.0) for e in r["evaluations"]])
                                               for r in mamba], "win_rate", 10)
    assert separated["p"] == pytest.approx(2 / 32) and separated["ahead"] == 5  # the smallest p 5 pairs can give
    assert curves.paired_difference(mag[:2], mamba[2:], "win_rate", 10) is None  # no seed in common
    assert curves.paired_difference(mag, mamba, "win_rate_auc", 10)["by_seed"][0] == pytest.approx(0.25)
    table = curves.paired_table({("3s_vs_3z", "mag"): mag, ("3s_vs_3z", "mamba"): mamba,
                                 ("2s3z", "ppo"): mag}, [0, 10])
    assert table.count("\n") == 2 + 4 - 1
    assert "| 3s_vs_3z | 10 | greedy win rate | 0: +0.50, 1: +0.50, 2: -0.20" in table


def test_the_cost_table_gives_medians_per_map_and_algorithm(curves):
    def record(algo, seed, elapsed_s, updates):
        _, result = fake_result(curves, algo, "2s3z", seed, [0.0, 0.5])
        phases = dict.fromkeys(curves.PHASES, 0.0) | {"imagination": elapsed_s / 2}
        return {**result, "elapsed_s": elapsed_s, "learner_updates": updates, "phase_s": phases}

    table = curves.cost_table({("2s3z", "mamba"): [record("mamba", 0, 600.0, 395), record("mamba", 1, 1200.0, 395)],
                               ("2s3z", "mag"): [record("mag", 0, 1800.0, 394), record("mag", 1, 3000.0, 395)],
                               ("2s3z", "ppo"): [record("ppo", 0, 300.0, 0)]}).splitlines()
    assert len(table) == 2 + 3
    mag, mamba, ppo = table[2:]  # MAG, MAMBA, PPO order, whatever the dict's
    assert mag.startswith("| 2s3z | MAG | 2 | 10 | 40.0 min | 394.5 | ") and "imagination 50%" in mag
    assert "| 15.0 min | 395 | " in mamba  # an integral median printed as an integer
    assert ppo.endswith("| 5.0 min | — | — |")
