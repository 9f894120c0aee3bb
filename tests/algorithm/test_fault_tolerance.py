"""Training survives faults on SMAX, or fails at once and says why: a failing env, a killed env runner, a damaged
checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.tune.registry import register_env

from rllib_mag import MAG
from rllib_mag.checkpoints import REQUIRED_FILES, CheckpointError
from rllib_mag.envs import env_creator

from mag_tiny import TINY, tiny_config

REPO = Path(__file__).resolve().parents[2]
CRASH = "simulated StarCraft II crash"


def test_an_env_that_always_fails_fails_the_trial_with_its_own_error(ray_local):
    def failing_reset_env(env_config):  # defined here: Ray pickles it by value for the env runner
        """SMAX 3s_vs_3z whose every reset raises, as a half-installed StarCraft II does."""
        env = env_creator("smax_team")(env_config)

        def reset(*args, **kwargs):
            raise RuntimeError(CRASH)

        env.reset = reset
        return env

    register_env("smax_team_failing_reset", failing_reset_env)
    config = tiny_config(num_env_runners=1).environment("smax_team_failing_reset").fault_tolerance(
        max_consecutive_sample_failures=2)
    algo = config.build_algo()
    try:
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match=r"(?s)no env runner returned data in 2 sampling rounds in a row "
                                               r"\(max_consecutive_sample_failures=2\); the last env error:.*" + CRASH):
            algo.train()
        assert time.perf_counter() - start < 60
        assert algo.num_sample_errors == 2 and len(algo.real_buffer) == 0
    finally:
        algo.stop()


def test_a_killed_env_runner_is_restored_mid_iteration_and_its_partial_episode_dropped(ray_local, tmp_path):
    flag = tmp_path / "kill_once"
    flag.touch()

    def kill_runner_once(*, episode, **kwargs):
        """Kill this env runner's process 30 steps into an episode, whose first chunk (25 steps) is pending on the
        driver."""
        if episode.t == 30 and os.path.exists(flag):
            os.remove(flag)
            os._exit(1)

    config = tiny_config(num_env_runners=1, episodes_per_iteration=2).callbacks(on_episode_step=kill_runner_once)
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(3)]
    finally:
        algo.stop()
    assert not flag.exists()  # the runner did die
    mag = results[-1]["mag"]
    assert mag["num_env_runner_restarts"] == 1 and mag["num_partial_episodes_dropped"] >= 1
    assert mag["num_learner_updates_lifetime"] >= 4  # training went on after the restart
    assert results[-1]["num_env_steps_sampled_lifetime"] > results[0]["num_env_steps_sampled_lifetime"]
    assert algo.episode_assembler.num_pending <= 1  # only the live runner's current episode


def _state_arrays(algo) -> dict[str, np.ndarray]:
    """Every number a restore must bring back: networks, optimizer moments, D_e, counters, RNG, entropy."""
    learner = algo.learner_group.get_state()["learner"]
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}", item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(f"{prefix}/{i}", item)
        elif isinstance(value, (np.ndarray, torch.Tensor, int, float)):
            flat[prefix] = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)

    walk("rl_module", learner["rl_module"])
    walk("optimizer", learner["optimizer"])
    walk("real_buffer", algo.real_buffer.get_state())
    flat["entropy_coeff"] = np.asarray(learner["entropy_coeff"])
    walk("rng", algo.rng.bit_generator.state)
    flat["counters"] = np.asarray([algo.num_learner_updates, algo.update_credit, algo.num_synthetic_transitions])
    return flat


def test_checkpoint_restores_bit_identical_state_and_names_any_damaged_file(ray_local, tmp_path):
    algo = tiny_config(num_model_rollout_actors=0).build_algo()
    try:
        algo.train()
        algo.train()
        checkpoint = algo.save_to_path(str(tmp_path / "checkpoint"))
        saved = _state_arrays(algo)
        torch.manual_seed(7)  # torch's global RNG is not in RLlib checkpoints: seed it alike on both sides
        algo._learner_update()  # the next learner update of the run that goes on (lines 4-18)
        continued = _state_arrays(algo)
    finally:
        algo.stop()
    restored = MAG.from_checkpoint(checkpoint)
    try:
        again = _state_arrays(restored)
        assert saved.keys() == again.keys() and any(key.startswith("optimizer/") for key in saved)
        assert any("exp_avg_sq" in key for key in saved) and saved["real_buffer/rows/obs"].shape[0] > 0
        for key, value in saved.items():
            assert np.array_equal(value, again[key]), key
        torch.manual_seed(7)
        restored._learner_update()  # the restored run takes the same update, bit for bit
        after_restore = _state_arrays(restored)
        changed = [key for key in saved if not np.array_equal(saved[key], continued[key])]
        assert any(key.startswith("rl_module/") for key in changed) and "entropy_coeff" in changed
        for key, value in continued.items():
            assert np.array_equal(value, after_restore[key]), key
    finally:
        restored.stop()

    for number, relative in enumerate(REQUIRED_FILES):  # each file in turn: missing, then truncated to half
        damaged = tmp_path / f"damaged_{number}"
        shutil.copytree(checkpoint, damaged)
        (damaged / relative).unlink()
        with pytest.raises(CheckpointError, match=rf"is incomplete: {re.escape(str(relative))} is missing"):
            MAG.from_checkpoint(damaged)
        data = (Path(checkpoint) / relative).read_bytes()
        (damaged / relative).write_bytes(data[:len(data) // 2])
        with pytest.raises(CheckpointError, match=rf"is damaged: {re.escape(str(relative))} does not load"):
            MAG.from_checkpoint(damaged)
    shutil.rmtree(Path(checkpoint) / "learner_group")  # RLlib's own entry point checks too
    with pytest.raises(CheckpointError, match=r"learner_group/state.pkl is missing"):
        Algorithm.from_checkpoint(checkpoint)


def test_ctrl_c_stops_rllib_train_with_a_final_checkpoint_and_resume_continues(tmp_path):
    rllib = str(Path(sys.executable).parent / "rllib")
    args = ["train", "file", str(REPO / "tuned_examples" / "mag_smax_2s3z.yaml"), "--config",
            json.dumps({**TINY, "num_model_rollout_actors": 0}), "--storage-path", str(tmp_path), "--num-cpus", "2"]
    stop = 80  # iterations; Tune writes result.json in bursts, so Ctrl-C lands some 30 iterations in
    proc = subprocess.Popen([rllib, *args, "--stop", json.dumps({"training_iteration": stop})],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = tmp_path / "mag-smax-2s3z"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(results.glob("*/result.json"))
        if files and len(files[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, output[-3000:]
    assert "Ctrl-C: every running trial checkpoints after its current iteration" in output
    (trial_dir,) = [p for p in results.iterdir() if p.is_dir()]
    iterations = len((trial_dir / "result.json").read_text().splitlines())
    assert 2 <= iterations < stop
    assert len(list(trial_dir.glob("checkpoint_*"))) == 1 + iterations // 25  # every 25 iterations, and the final one
    resume_hint = output.rstrip().splitlines()[-1]
    assert resume_hint.startswith("interrupted; continue from the checkpoints with: rllib train file ")
    assert resume_hint.endswith(" --resume") and "--stop" not in resume_hint

    resumed = subprocess.run([rllib, *args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    lines = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    first_resumed = lines[iterations]
    # from the final checkpoint (iteration `iterations`), not the last periodic one, to the original stop
    assert first_resumed["training_iteration"] == iterations + 1 and first_resumed["iterations_since_restore"] == 1
    assert lines[-1]["training_iteration"] == stop
    assert (first_resumed["mag"]["num_learner_updates_lifetime"]
            > lines[iterations - 1]["mag"]["num_learner_updates_lifetime"])
