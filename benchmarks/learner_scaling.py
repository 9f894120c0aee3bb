"""Wall-clock of MAG's learner phases with 1 and with several data-parallel learners (issue 4).

Every setting trains the same config (`small` preset, SMAX `--map`) for one warm-up and `--iterations` timed
iterations in a fresh Ray session, one setting after the other, and reports the median per-update seconds of `timers/model_training`
(world model + R_m steps) and `timers/policy_training` (PPO), and their ratio to the first setting. Each learner
gets `--cpus-per-learner` CPUs and one torch thread per CPU; batches are totals split over the learners.

Example: ``python benchmarks/learner_scaling.py --learners 1 2 --iterations 4``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import ray  # noqa: E402
import torch  # noqa: E402

import rllib_mag  # noqa: E402
from rllib_mag import MAGConfig  # noqa: E402

PHASES = ("model_training", "policy_training", "imagination")


def build_config(map_name: str, num_learners: int, cpus_per_learner: int, batch_size: int) -> MAGConfig:
    """The `mag_smax_*` tuned-example schedule (batch `batch_size` sequences; the other batches divide by 4)."""
    return (MAGConfig().environment("smax_team", env_config={"map_name": map_name})
            .update_from_dict({
                "world_model_preset": "small", "world_model_train_steps": 20, "model_reward_train_steps": 20,
                "batch_size_B": batch_size, "batch_length_T": 20, "warmup_steps": 500, "imagination_starts_M": 256,
                "synthetic_capacity": 3840, "policy_rounds": 2, "episodes_per_iteration": 2,
                "ppo_minibatch_size": 1000, "num_model_rollout_actors": 1, "num_cpus_per_rollout_actor": 1,
                "num_learners": num_learners, "num_cpus_per_learner": cpus_per_learner})
            .debugging(seed=0))


def measure(map_name: str, num_learners: int, cpus_per_learner: int, batch_size: int,
            iterations: int) -> dict[str, float]:
    rllib_mag.register()
    ray.init(num_cpus=max(4, num_learners * cpus_per_learner + 2), include_dashboard=False, log_to_driver=False)
    try:
        algo = build_config(map_name, num_learners, cpus_per_learner, batch_size).build()
        per_update: dict[str, list[float]] = {phase: [] for phase in PHASES}
        algo.train()  # warm-up: fills D_e, first updates
        done = algo.num_learner_updates
        start = time.perf_counter()
        for _ in range(iterations):
            result = algo.train()
            updates, done = algo.num_learner_updates - done, algo.num_learner_updates
            for phase in PHASES:
                per_update[phase].append(result["timers"][phase] / updates)
        algo.stop()
    finally:
        ray.shutdown()
    medians = {phase: statistics.median(times) for phase, times in per_update.items()}
    medians["seconds"] = time.perf_counter() - start
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", default="3s_vs_3z")
    parser.add_argument("--learners", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-learner", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16, help="batch_size_B (16: tuned examples, 40: paper)")
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [(n, measure(args.map, n, args.cpus_per_learner, args.batch_size, args.iterations))
            for n in args.learners]
    base = rows[0][1]
    print(f"map={args.map} batch_size_B={args.batch_size} iterations={args.iterations} "
          f"cpus_per_learner={args.cpus_per_learner} cpus={os.cpu_count()}")
    print("| learners | model training s/update | policy training s/update | imagination s/update | "
          "model speed-up | policy speed-up | timed iterations s |\n|---|---|---|---|---|---|---|")
    for n, row in rows:
        print(f"| {n} | {row['model_training']:.2f} | {row['policy_training']:.2f} | {row['imagination']:.2f} | "
              f"{base['model_training'] / row['model_training']:.2f}x | "
              f"{base['policy_training'] / row['policy_training']:.2f}x | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
