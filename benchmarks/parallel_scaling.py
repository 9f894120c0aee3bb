"""Wall-clock of MAG's update phases with several data-parallel learners and several model-rollout actors
(issue 4).

Every setting (each `--learners` value with each `--rollout-actors` value) trains the same config (`small`
preset, SMAX `--map`) for one warm-up and `--iterations` timed iterations in a fresh Ray session, one setting
after the other, and reports the median per-update seconds of `timers/model_training` (world model + R_m
steps), `timers/imagination` (MPC rollouts) and `timers/policy_training` (PPO), each with its speed-up over
the first setting. Each learner and each rollout actor gets one CPU and one torch thread; batches and the M
start states are totals split over the learners (and the actors).

Example: ``python benchmarks/parallel_scaling.py --learners 1 2 --rollout-actors 1 --iterations 4``
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

PHASES = ("model_training", "imagination", "policy_training")


def build_config(map_name: str, num_learners: int, num_rollout_actors: int, batch_size: int) -> MAGConfig:
    """The `mag_smax_*` tuned-example schedule (batch `batch_size` sequences; the other batches divide by 4)."""
    return (MAGConfig().environment("smax_team", env_config={"map_name": map_name})
            .update_from_dict({
                "world_model_preset": "small", "world_model_train_steps": 20, "model_reward_train_steps": 20,
                "batch_size_B": batch_size, "batch_length_T": 20, "warmup_steps": 500, "imagination_starts_M": 256,
                "policy_rounds": 2, "episodes_per_iteration": 2,
                "ppo_minibatch_size": 1000, "num_model_rollout_actors": num_rollout_actors,
                "num_cpus_per_rollout_actor": 1, "num_learners": num_learners, "num_cpus_per_learner": 1})
            .debugging(seed=0))


def measure(map_name: str, num_learners: int, num_rollout_actors: int, batch_size: int,
            iterations: int) -> dict[str, float]:
    rllib_mag.register()
    # Logical CPUs: every actor gets its one CPU even where the machine has fewer cores.
    ray.init(num_cpus=num_learners + num_rollout_actors + 2, include_dashboard=False, log_to_driver=False)
    try:
        algo = build_config(map_name, num_learners, num_rollout_actors, batch_size).build()
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
    parser.add_argument("--rollout-actors", type=int, nargs="+", default=[1])
    parser.add_argument("--batch-size", type=int, default=16, help="batch_size_B (16: tuned examples, 40: paper)")
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [(learners, actors, measure(args.map, learners, actors, args.batch_size, args.iterations))
            for learners in args.learners for actors in args.rollout_actors]
    base = rows[0][2]
    print(f"map={args.map} batch_size_B={args.batch_size} iterations={args.iterations} cores={os.cpu_count()}")
    print("| learners | rollout actors | " + " | ".join(f"{phase} s/update (speed-up)" for phase in PHASES)
          + " | timed iterations s |\n|---|---|" + "---|" * (len(PHASES) + 1))
    for learners, actors, row in rows:
        cells = " | ".join(f"{row[phase]:.2f} ({base[phase] / row[phase]:.2f}x)" for phase in PHASES)
        print(f"| {learners} | {actors} | {cells} | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
