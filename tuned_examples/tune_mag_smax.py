"""The paper's ablation (Figures 4-5) as a Ray Tune search: planning horizon H, candidates L and model lr.

    python tuned_examples/tune_mag_smax.py --map 3s_vs_3z --env-steps 20000
    python tuned_examples/tune_mag_smax.py --ray-address auto --max-concurrent 8     # on a cluster

Each trial is one MAG run on SMAX with the `small` preset; Tune picks the best trial by
`env_runners/win_rate` and prints a table of all of them. Trial folders hold results, TensorBoard logs and
checkpoints (`--storage-path`).
"""

from __future__ import annotations

import argparse
import os

import ray
from ray import tune

import rllib_mag
from rllib_mag import MAG, MAGConfig


def search_space(map_name: str) -> MAGConfig:
    """A small-preset MAG config for 2 cores (20 model and R_m steps per update, B=16, M=256, 2 policy rounds)
    with H, L and the model lr as search dimensions."""
    return (
        MAGConfig()
        .environment("smax_team", env_config={"map_name": map_name})
        .world_model(preset="small", train_steps=20, batch_size_B=16, lr=tune.loguniform(2e-4, 1e-3))
        .model_reward(train_steps=20)
        .planning(planning_horizon_H=tune.grid_search([1, 3, 6]), planning_candidates_L=tune.grid_search([2, 4]),
                  imagination_starts_M=256)
        .rollout_actors(num_model_rollout_actors=1)
        .training(policy_rounds=2, ppo_minibatch_size=1000)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", default="3s_vs_3z", help="SMAX map (default: 3s_vs_3z)")
    parser.add_argument("--env-steps", type=int, default=20_000, help="real env steps per trial")
    parser.add_argument("--num-samples", type=int, default=1, help="samples of the lr per (H, L) grid point")
    parser.add_argument("--max-concurrent", type=int, default=1, help="trials running at once")
    parser.add_argument("--storage-path", default=os.path.expanduser("~/ray_results"))
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster, e.g. 'auto'")
    args = parser.parse_args()

    rllib_mag.register()  # the env and algorithm names, into the registry this Ray session will hold
    ray.init(address=args.ray_address, include_dashboard=False)
    tuner = tune.Tuner(
        MAG,
        param_space=search_space(args.map),
        tune_config=tune.TuneConfig(metric="env_runners/win_rate", mode="max", num_samples=args.num_samples,
                                    max_concurrent_trials=args.max_concurrent),
        run_config=tune.RunConfig(name=f"tune-mag-{args.map}", storage_path=args.storage_path,
                                  stop={"num_env_steps_sampled_lifetime": args.env_steps},
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True)),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"best trial: H={best.config['planning_horizon_H']} L={best.config['planning_candidates_L']} "
          f"model lr={best.config['world_model_lr']:.2e} win rate={best.metrics['env_runners']['win_rate']:.2f}")
    print(results.get_dataframe()[["config/planning_horizon_H", "config/planning_candidates_L",
                                   "config/world_model_lr", "env_runners/win_rate"]].to_string())


if __name__ == "__main__":
    main()
