"""MAG end to end on SMAX: the CLI, metrics, checkpoints and restore, rollout actors, Tune and a 2-node cluster."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from ray import tune
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from rllib_mag import MAG
from rllib_mag.envs import env_creator

from mag_tiny import TINY, tiny_config

REPO = Path(__file__).resolve().parents[2]
K = TINY["rollout_length_k"]
REQUIRED_METRICS = [
    "env_runners/win_rate", "env_runners/episode_return_mean", "env_runners/episode_len_mean",
    "evaluation/env_runners/win_rate",
    *(f"world_model/model_{term}" for term in ("loss", "kl", "reconstruction", "reward", "continue", "av_action",
                                               "mi", "reward_loss")),
    "planning/chosen_error", "planning/mean_candidate_error", "planning/accumulated_error",
    *(f"planning/accumulated_error_step_{step:02d}" for step in range(1, K + 1)),
    "policy/actor_loss", "policy/critic_loss", "policy/entropy",
    "throughput/env_steps_per_s", "throughput/synthetic_transitions_per_s",
    "timers/sample", "timers/model_training", "timers/imagination", "timers/policy_training",
    "num_env_steps_sampled_lifetime", "mag/num_synthetic_transitions_lifetime",
]


def lookup(result: dict, key: str):
    for part in key.split("/"):
        result = result[part]
    return result


def run_python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cli_trains_reports_metrics_checkpoints_and_restores(tmp_path):
    overrides = {**TINY, "evaluation_interval": 1, "evaluation_duration": 1,
                 "evaluation_duration_unit": "episodes"}
    cmd = [str(Path(sys.executable).parent / "rllib"), "train", "file",
           str(REPO / "tuned_examples" / "mag_smax_2s3z.yaml"), "--stop", json.dumps({"training_iteration": 2}),
           "--config", json.dumps(overrides), "--storage-path", str(tmp_path), "--num-cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc_summary = proc.stdout
    assert "win rate" in proc.stdout and "model loss" in proc.stdout  # the progress table
    (trial_dir,) = [p for p in (tmp_path / "mag-smax-2s3z").iterdir() if p.is_dir()]
    results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in results] == [1, 2]
    last = results[-1]
    for key in REQUIRED_METRICS:
        value = lookup(last, key)
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    assert 0.0 <= last["env_runners"]["win_rate"] <= 1.0
    # One learner update per warm episode: an iteration that ends two episodes in one sampling round runs two.
    updates = last["mag"]["num_learner_updates_lifetime"]
    assert updates >= 2
    assert last["mag"]["num_synthetic_transitions_lifetime"] == updates * TINY["imagination_starts_M"] * K
    # The by-step curve ends at the reported total (R_m is a linear head, so early steps may be negative).
    assert last["planning"][f"accumulated_error_step_{K:02d}"] == pytest.approx(last["planning"]["accumulated_error"])
    assert list(trial_dir.glob("events.out.tfevents.*"))

    (checkpoint,) = sorted(trial_dir.glob("checkpoint_*"))
    restored = run_python(f"""
        import json, torch
        torch.set_num_threads(1)
        from ray.rllib.algorithms.algorithm import Algorithm
        algo = Algorithm.from_checkpoint({str(checkpoint)!r})
        before = (algo.training_iteration, algo.num_learner_updates, len(algo.real_buffer))
        result = algo.train()
        print(json.dumps({{"before": before, "iteration": result["training_iteration"],
                          "updates": algo.num_learner_updates, "rows": len(algo.real_buffer),
                          "env_steps": result["num_env_steps_sampled_lifetime"]}}))
        algo.stop()
    """)
    iteration, restored_updates, rows = restored["before"]
    assert iteration == 2 and restored_updates == updates
    assert rows == last["mag"]["real_buffer_rows"] > 0
    assert restored["iteration"] == 3 and restored["updates"] > restored_updates and restored["rows"] > rows
    assert restored["env_steps"] > last["num_env_steps_sampled_lifetime"]

    # what the summary says to run next: evaluate the checkpoint (with a GIF) and plot the trial
    rllib = str(Path(sys.executable).parent / "rllib")
    gif = tmp_path / "episode.gif"
    proc = subprocess.run([rllib, "evaluate", str(checkpoint), "--episodes", "3", "--render", str(gif)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"rllib evaluate {checkpoint} --episodes 32" in proc_summary
    report = next(line for line in proc.stdout.splitlines() if "greedy episodes" in line)
    assert report.startswith("3 greedy episodes: win rate ") and "(95% CI " in report
    assert gif.read_bytes()[:6] == b"GIF89a" and gif.stat().st_size > 10_000
    proc = subprocess.run([rllib, "plot", str(trial_dir.parent)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (trial_dir.parent / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_rollout_actors_mamba_mode_replacement_and_policy_export(ray_local, tmp_path):
    algo = tiny_config(num_model_rollout_actors=2, mode="mamba", model_error_eval_interval=2,
                       model_error_eval_starts=6).build()
    try:
        assert [loc["device"] for loc in algo.rollout_pool.locations()] == ["cpu", "cpu"]
        first = algo.train()
        assert first["mag"]["num_synthetic_transitions_lifetime"] == (
            first["mag"]["num_learner_updates_lifetime"] * TINY["imagination_starts_M"] * K)
        assert "chosen_error" not in first["planning"]  # no candidates without planning
        assert math.isfinite(first["planning"]["accumulated_error"])

        ray.kill(algo.rollout_pool.actors[0])
        second = algo.train()
        assert second["mag"]["num_rollout_actor_restarts"] == 1
        assert second["mag"]["num_learner_updates_lifetime"] > first["mag"]["num_learner_updates_lifetime"]

        # true model error against SMAX every 2nd iteration: accumulated over the k imagined steps
        assert "model_error" not in first and "model_error" in second
        true_error = [second["model_error"][f"true_step_{t:02d}"] for t in range(1, K + 1)]
        assert all(math.isfinite(e) for e in true_error) and true_error[0] > 0
        assert np.all(np.diff(true_error) >= 0)
        assert -1.0 <= second["model_error"]["rm_spearman"] <= 1.0
        assert second["timers"]["model_error_eval"] > 0

        path = algo.export_policy(tmp_path / "policy")
    finally:
        algo.stop()
    module = RLModule.from_checkpoint(path)
    assert module.inference_only and not hasattr(module, "critic") and not hasattr(module, "model_reward")
    env = env_creator("smax_team")({"map_name": "3s_vs_3z"})
    obs, _ = env.reset(seed=1)
    state = {k: v[None] for k, v in module.get_initial_state().items()}
    batch = {Columns.OBS: {k: torch.as_tensor(v)[None, None] for k, v in obs.items()}, Columns.STATE_IN: state}
    out = module.forward_inference(batch)
    actions = out[Columns.ACTIONS][0, 0].numpy()
    assert actions.shape == (3,)
    assert all(obs["action_mask"][i, a] == 1 for i, a in enumerate(actions))
    env.step(actions)


def held_synthetic(algo) -> list[torch.Tensor]:
    """Each learner's D_m features."""
    return [r.get() for r in algo.learner_group.foreach_learner(lambda learner: learner.synthetic_buffer.all().features)]


def test_learner_imagines_on_its_own_networks_compiled_without_rollout_actors(ray_local, tmp_path):
    """`num_model_rollout_actors: 0`: the learner imagines into its own D_m with a compiled step; the compile time
    shows in the first iteration's timers and not again once the shapes are known; D_m is checkpointed on request."""
    algo = tiny_config(num_model_rollout_actors=0, compile=True, checkpoint_synthetic_buffer=True).build()
    try:
        first, second = algo.train(), algo.train()
        assert algo.rollout_pool.actors == []
        held = [r.get() for r in algo.learner_group.foreach_learner(
            lambda learner: (len(learner.synthetic_buffer), learner.imagination.step.enabled))]
        assert held == [(TINY["imagination_starts_M"] * K, True)]  # capacity 64 = the latest round
        assert first["timers"]["imagination_compile"] > 0
        assert second["timers"]["imagination_compile"] == 0
        assert second["mag"]["synthetic_buffer_transitions"] == TINY["imagination_starts_M"] * K
        assert second["mag"]["num_synthetic_transitions_lifetime"] == (
            second["mag"]["num_learner_updates_lifetime"] * TINY["imagination_starts_M"] * K)
        assert math.isfinite(second["planning"]["chosen_error"])
        held = held_synthetic(algo)
        path = algo.save_to_path(str(tmp_path / "checkpoint"))
    finally:
        algo.stop()
    restored = MAG.from_checkpoint(path)
    try:
        assert all(torch.equal(a, b) for a, b in zip(held_synthetic(restored), held, strict=True))
    finally:
        restored.stop()


def learner_weights(algo) -> list[dict[str, torch.Tensor]]:
    return [result.get() for result in algo.learner_group.foreach_learner(
        lambda learner: {k: v.detach().cpu() for k, v in learner.networks.state_dict().items()})]


def test_two_data_parallel_learners_train_in_step_and_checkpoint(ray_local, tmp_path):
    """Each learner trains on its shard; averaged gradients keep both on the same weights, which change."""
    algo = tiny_config(num_learners=2, num_cpus_per_learner=1).build()
    try:
        ranks = [r.get() for r in algo.learner_group.foreach_learner(lambda learner: learner.data_parallel.rank)]
        assert sorted(ranks) == [0, 1]
        initial = learner_weights(algo)
        result = algo.train()
        assert result["mag"]["num_learner_updates_lifetime"] >= 1
        assert math.isfinite(result["world_model"]["model_loss"]) and math.isfinite(result["policy"]["actor_loss"])
        trained = learner_weights(algo)
        for name, value in trained[0].items():
            assert torch.equal(value, trained[1][name]), name
        shards = held_synthetic(algo)  # each learner keeps its own half of the rollout actor's M starts
        assert [len(shard) for shard in shards] == [TINY["imagination_starts_M"] // 2] * 2
        assert not torch.equal(shards[0], shards[1])
        assert any(not torch.equal(value, initial[0][name]) for name, value in trained[0].items()
                   if name.startswith(("world_model.", "model_reward.", "actor.", "critic.")))
        path = algo.save_to_path(str(tmp_path / "checkpoint"))
    finally:
        algo.stop()
    restored = MAG.from_checkpoint(path)
    try:
        for name, value in learner_weights(restored)[0].items():
            assert torch.equal(value, trained[0][name]), name
    finally:
        restored.stop()


@pytest.mark.parametrize("key", ["num_gpus_per_learner", "num_gpus_per_rollout_actor"])
def test_gpu_settings_fail_fast_on_a_cluster_without_gpus(ray_local, key):
    with pytest.raises(ValueError, match=rf"{key}=1 asks for GPUs, but the Ray cluster has none"):
        tiny_config(**{key: 1, "num_learners": 1}).build()


def test_tune_runs_two_trials(ray_local, tmp_path):
    config = tiny_config(planning_horizon_H=tune.grid_search([1, 2]))
    tuner = tune.Tuner(MAG, param_space=config,
                       tune_config=tune.TuneConfig(metric="env_runners/win_rate", mode="max"),
                       run_config=tune.RunConfig(stop={"training_iteration": 1}, storage_path=str(tmp_path),
                                                 verbose=0))
    results = tuner.fit()
    assert results.num_errors == 0 and len(results) == 2
    assert sorted(r.config["planning_horizon_H"] for r in results) == [1, 2]
    assert all(0.0 <= r.metrics["env_runners"]["win_rate"] <= 1.0 for r in results)


def test_tune_resumes_an_errored_trial_from_its_checkpoint(ray_local, tmp_path):
    """A trial that dies in iteration 2 resumes with `Tuner.restore` from its iteration-1 checkpoint."""
    flag = tmp_path / "fail_once"
    flag.touch()

    def fail_in_iteration_2_once(*, result, **kwargs):
        if result["training_iteration"] == 2 and os.path.exists(flag):
            os.remove(flag)
            raise RuntimeError("simulated crash")

    config = tiny_config().callbacks(on_train_result=fail_in_iteration_2_once)
    run_config = tune.RunConfig(name="resume", storage_path=str(tmp_path), stop={"training_iteration": 3},
                                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1), verbose=0)
    first = tune.Tuner(MAG, param_space=config, run_config=run_config).fit()
    assert first.num_errors == 1 and not flag.exists()
    resumed = tune.Tuner.restore(str(tmp_path / "resume"), trainable=MAG, resume_errored=True).fit()
    assert resumed.num_errors == 0
    (result,) = list(resumed)
    assert result.metrics["training_iteration"] == 3
    assert result.metrics["iterations_since_restore"] == 2  # resumed after iteration 1, not restarted


def test_two_node_cluster_places_work_on_both_nodes():
    from ray.cluster_utils import Cluster

    import rllib_mag

    rllib_mag.register()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        algo = tiny_config(num_env_runners=1, num_cpus_per_env_runner=1, num_cpus_per_rollout_actor=1,
                           planning_dtype="bfloat16").build()
        result = algo.train()
        assert result["mag"]["num_learner_updates_lifetime"] >= 1
        assert result["policy"]["initial_ratio_deviation"] < 1e-5  # bf16 rollouts, float32 old log-probs
        runner_nodes = algo.env_runner_group.foreach_env_runner(
            lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False)
        rollout_nodes = [loc["node_id"] for loc in algo.rollout_pool.locations()]
        assert set(runner_nodes + rollout_nodes) == {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        algo.stop()
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_model_rollout_loads_learner_weights_and_returns_float32(dtype):
    """A rollout actor (here in-process) takes float32 learner weights in either planning dtype."""
    from rllib_mag.algorithm.catalog import ROLLOUT_NETWORKS
    from rllib_mag.algorithm.rollout_actor import ModelRollout
    from rllib_mag.envs.team import team_spaces
    from rllib_mag.models.synthetic import random_sequence_batch
    from rllib_mag.planning.imagination import PlanningConfig

    observation_space, _ = team_spaces(3, 6, 5, 4)
    plan = PlanningConfig(rollout_length_k=3, planning_horizon_H=2, planning_candidates_L=2)
    torch.manual_seed(0)
    rollout = ModelRollout(observation_space, {"name": "small"}, plan, dtype=dtype)
    networks = rollout.imagination.networks
    torch.manual_seed(1)  # the learner's weights: another initialisation than the actor's own
    learner = ModelRollout(observation_space, {"name": "small"}, plan).imagination.networks
    weights = {name: {k: v.float() for k, v in getattr(learner, name).state_dict().items()}
               for name in ROLLOUT_NETWORKS}
    assert not torch.equal(next(networks.actor.parameters()).float(), next(learner.actor.parameters()))
    real = {k: v.numpy() for k, v in random_sequence_batch(8, 4, 3, 6, 4).items()}
    synthetic, info = rollout.rollout(weights, real, num_starts=10, seed=0)
    for name in ROLLOUT_NETWORKS:  # the actor now holds the learner's weights, in its own dtype
        for key, value in getattr(networks, name).state_dict().items():
            assert torch.equal(value, weights[name][key].to(value.dtype)), (name, key)
    assert info == {"compile_seconds": 0.0}  # eager unless compile=True
    assert next(networks.world_model.parameters()).dtype == getattr(torch, dtype)
    assert synthetic.features.shape == (10, 3, 3, 128) and synthetic.values.dtype == torch.float32
    assert torch.isfinite(synthetic.values).all() and torch.isfinite(synthetic.chosen_error).all()


def test_start_rows_are_distinct_when_there_are_enough():
    from rllib_mag.algorithm.rollout_actor import draw_rows

    g = torch.Generator().manual_seed(0)
    rows = draw_rows(900, 720, g)
    assert rows.shape == (720,) and len(set(rows.tolist())) == 720 and 0 <= rows.min() and rows.max() < 900
    few = draw_rows(5, 12, g)
    assert few.shape == (12,) and set(few.tolist()) == set(range(5))  # every row, then repeats
