"""The `rllib` command: YAML parsing, algorithm resolution, key checks and an end-to-end PPO run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray.rllib.algorithms.ppo import PPO

from rllib_mag import MaskedPPO
from rllib_mag.cli import CLIError, build_experiments, check_local_resources, main, resolve_algorithm

REPO = Path(__file__).resolve().parents[1]
PPO_YAML = REPO / "tuned_examples" / "ppo_smax_2s3z.yaml"


def write_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return str(path)


def test_resolves_builtin_registered_and_dotted_names():
    assert resolve_algorithm("PPO") is PPO
    assert resolve_algorithm("MaskedPPO") is MaskedPPO
    assert resolve_algorithm("rllib_mag.baselines.masked_ppo.MaskedPPO") is MaskedPPO


def test_unknown_algorithm_suggests_closest():
    with pytest.raises(CLIError, match="unknown algorithm 'PPPO'.*did you mean 'PPO'"):
        resolve_algorithm("PPPO")
    with pytest.raises(CLIError, match="cannot import algorithm 'no_such_pkg.Algo'"):
        resolve_algorithm("no_such_pkg.Algo")


def test_yaml_becomes_tune_experiment_with_overrides(tmp_path):
    path = write_yaml(tmp_path, """
exp:
  algo: PPO
  env: CartPole-v1
  stop: {training_iteration: 100}
  config: {lr: 0.001, env_config: {a: 1, b: 2}}
""")
    experiments = build_experiments(path, stop={"training_iteration": 1},
                                    config={"env_config": {"b": 3}, "gamma": 0.5}, storage_path="rel/dir")
    spec = experiments["exp"]
    assert spec["run"] is PPO
    assert spec["stop"] == {"training_iteration": 1}
    assert spec["config"] == {"lr": 0.001, "env_config": {"a": 1, "b": 3}, "gamma": 0.5, "env": "CartPole-v1"}
    assert spec["storage_path"] == os.path.abspath("rel/dir")


@pytest.mark.parametrize("text, message", [
    ("exp: {run: PPO, config: {lamda: 0.9}}", "unknown config key 'lamda' for PPO; did you mean 'lambda"),
    ("exp: {run: PPO, config: {num_env_runner: 1}}", "did you mean 'num_env_runners'"),
    ("exp: {run: PPO, stopp: {}}", "unknown key 'stopp'; did you mean 'stop'"),
    ("exp: {env: CartPole-v1}", r"needs `run:` \(or `algo:`\)"),
    ("- just a list", "expected a mapping of experiment names"),
    ("exp: {run: PPO, env: CartPole-v1, stop: {training_iteraton: 3}}",
     "unknown stop key 'training_iteraton'; did you mean 'training_iteration'.*a trial would never stop on it"),
    ("exp: {run: PPO, env: CartPole-v1, checkpoint_config: {checkpoint_freq: 5}}",
     "unknown checkpoint_config key 'checkpoint_freq'; did you mean 'checkpoint_frequency'"),
    ("exp: {run: PPO, env: CartPole-v1, config: {lr: 0.1}\n  bad: [", r"exp.yaml is not valid YAML: "),
    ("exp: 3", "expected a mapping, got int"),
])
def test_bad_experiment_files_are_rejected(tmp_path, text, message):
    with pytest.raises(CLIError, match=message):
        build_experiments(write_yaml(tmp_path, text))


def test_stop_keys_may_be_metric_paths(tmp_path):
    path = write_yaml(tmp_path, "exp: {run: PPO, env: CartPole-v1, stop: {env_runners/win_rate: 0.9, "
                                "num_env_steps_sampled_lifetime: 100}}")
    assert build_experiments(path)["exp"]["stop"] == {"env_runners/win_rate": 0.9,
                                                      "num_env_steps_sampled_lifetime": 100}


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "tuned_examples").glob("*.yaml")))
def test_every_tuned_example_validates_before_ray_starts(example):
    """The YAMLs the README lists build and validate; the real-SMAC one stops with SMAC's fix-it message here."""
    path = str(REPO / "tuned_examples" / example)
    if example == "mag_corridor.yaml":
        with pytest.raises(CLIError, match="needs real SMAC and StarCraft II"):
            build_experiments(path)
        return
    (spec,) = build_experiments(path).values()
    check_local_resources({"exp": spec}, {"CPU": 2.0})  # each fits this project's 2-core machines
    assert spec["stop"] and spec["config"]["env"]


def test_main_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["train", "file", str(tmp_path / "missing.yaml")]) == 2
    assert "experiment file not found" in capsys.readouterr().err


def test_rllib_train_file_runs_ppo_and_checkpoints(tmp_path):
    """`rllib train file` on the PPO example: 2 iterations, a checkpoint, and the win-rate metric."""
    overrides = {"num_env_runners": 0, "train_batch_size_per_learner": 256, "minibatch_size": 128,
                 "num_epochs": 1, "env_config": {"map_name": "3s_vs_3z"}}
    cmd = [str(Path(sys.executable).parent / "rllib"), "train", "file", str(PPO_YAML),
           "--stop", json.dumps({"training_iteration": 2}), "--config", json.dumps(overrides),
           "--storage-path", str(tmp_path), "--num-cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trial_dirs = [p for p in (tmp_path / "ppo-smax-2s3z").iterdir() if p.is_dir()]
    assert len(trial_dirs) == 1
    results = [json.loads(line) for line in (trial_dirs[0] / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in results] == [1, 2]
    win_rates = [r["env_runners"]["win_rate"] for r in results if "win_rate" in r["env_runners"]]
    assert win_rates and all(0.0 <= w <= 1.0 for w in win_rates)
    assert list(trial_dirs[0].glob("checkpoint_*/algorithm_state.pkl"))
    assert list(trial_dirs[0].glob("events.out.tfevents.*")), "TensorBoard logs missing from the trial folder"
    # the progress table (one row per iteration) and the trial summary, not Tune's result dump
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial ") and "win rate" in line)
    assert lines[header].split()[1:] == ["iter", "env", "steps", "win", "rate", "return", "model", "loss", "time", "s"]
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [row[1] for row in rows] == ["1", "2"]
    assert [int(row[2]) for row in rows] == [r["num_env_steps_sampled_lifetime"] for r in results]
    assert rows[1][5] == "-"  # PPO has no world model
    checkpoint = next(trial_dirs[0].glob("checkpoint_*"))
    summary = "\n".join(lines[header + 3:])
    assert "TERMINATED" in summary and "win rate:" in summary and "(mean of iterations 1-2) ->" in summary
    assert f"checkpoint: {checkpoint}" in summary
    assert "rllib evaluate" not in summary  # it plays MAG (team-view) checkpoints; the MAG CLI test runs it
    assert f"rllib plot {trial_dirs[0]}" in summary and f"tensorboard --logdir {trial_dirs[0]}" in summary
    assert len(lines) < 30, proc.stdout


def test_bad_config_values_fail_before_ray_starts(tmp_path):
    path = write_yaml(tmp_path, "exp: {run: PPO, env: CartPole-v1, config: {train_batch_size_per_learner: 10, "
                                "minibatch_size: 100}}")
    with pytest.raises(CLIError, match="invalid config: .*minibatch_size"):
        build_experiments(path)
    path = write_yaml(tmp_path, "exp: {run: MAG, env: smax_team, config: {planning_horizon_H: 0}}")
    with pytest.raises(CLIError, match="planning_horizon_H=0 is invalid"):
        build_experiments(path)
    # Tune search spaces are resolved per trial, so they are validated there.
    path = write_yaml(tmp_path, "exp: {run: MAG, env: smax_team, config: {planning_horizon_H: {grid_search: [0, 1]}}}")
    assert build_experiments(path)["exp"]["config"]["planning_horizon_H"] == {"grid_search": [0, 1]}


def test_trials_that_cannot_fit_the_local_ray_instance_fail_fast():
    mag_yaml = str(REPO / "tuned_examples" / "mag_smax_2s3z.yaml")
    fits = build_experiments(mag_yaml)  # the driver + 2 rollout actors of half a CPU = 2 CPUs
    check_local_resources(fits, {"CPU": 2.0})
    one_actor = {"num_model_rollout_actors": 1, "num_cpus_per_rollout_actor": 1}
    gpu = build_experiments(mag_yaml, config={**one_actor, "num_gpus_per_rollout_actor": 1})
    with pytest.raises(CLIError, match=r"one trial needs 1 GPU .* this local Ray instance has 0; .*--num-gpus"):
        check_local_resources(gpu, {"CPU": 2.0})
    learners = build_experiments(mag_yaml, config={**one_actor, "num_learners": 2})  # 1 + 2 + 1 CPUs
    with pytest.raises(CLIError, match=r"one trial needs 4 CPU .* has 2;"):
        check_local_resources(learners, {"CPU": 2.0})
