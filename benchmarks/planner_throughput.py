"""Throughput and peak memory of MAG's imagination planner and learner pieces (issue 3).

Each case runs in a fresh subprocess (so ``ru_maxrss`` is that case's peak RSS) with ``torch.set_num_threads``.
The 1-minute load average seen during a case is printed with it: on a shared 2-core machine other jobs inflate
wall times (2-thread cases suffer most), so compare rows taken at similar load.
Cases (``--cases``):

* ``mpc`` / ``no_mpc``: one imagination of ``--starts`` M start states x k=15 steps with / without the planner
  (L=4, H=6); reported as kept joint transitions per second (M * k / seconds).
* ``model_update``: one world-model gradient step on 40 sequences x 20 steps.
* ``ppo``: one PPO pass (5 epochs, minibatches of 2000) over an M x k imagined batch.
* ``learner_update``: one full learner update of the reference schedule (60 world-model steps, 60 R_m steps,
  4 x (imagination + PPO)); by default only for the ``small`` preset.

``--compile`` runs the imagined step under ``torch.compile`` (the ``compile`` config key): one untimed warm-up imagination compiles the step; ``compile s`` is the wall time of the
first call per input shape (compilation included).

Example: ``python benchmarks/planner_throughput.py --presets paper small --agents 3 5 --threads 1 2``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from rllib_mag.compilation import Compiled
from rllib_mag.learning import PPOConfig, WorldModelTrainer, make_optimizers, ppo_update
from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, imagine
from rllib_mag.planning.imagination import imagined_step

#: (obs dim, actions) of a SMAC map with that many agents: 3s_vs_5z and 2s3z.
SMAC_SIZES = {3: (48, 11), 5: (80, 11)}
CASES = ("mpc", "no_mpc", "mpc_bf16", "no_mpc_bf16", "model_update", "ppo", "learner_update")
IMAGINING_CASES = ("mpc", "no_mpc", "mpc_bf16", "no_mpc_bf16", "learner_update")


def _setup(preset: str, n_agents: int, starts: int):
    obs_dim, n_actions = SMAC_SIZES.get(n_agents, (48, 11))
    cfg = from_preset(preset)
    nets = (WorldModel(cfg, obs_dim, n_actions), Actor(cfg, n_actions), AttentionCritic(cfg),
            ModelRewardPredictor(cfg))
    batch = random_sequence_batch(starts // 40 or 1, 40 if starts >= 40 else starts, n_agents, obs_dim, n_actions)
    with torch.no_grad():
        start = nets[0].loss(batch).posterior.map(lambda x: x.flatten(0, 1))
    return cfg, nets, start, (obs_dim, n_actions)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn) -> tuple[float, float]:
    """Wall and process-CPU seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def run_case(case: str, preset: str, n_agents: int, threads: int, starts: int, repeats: int,
             compile: bool = False) -> dict:
    """Run one case in this process; returns seconds per repeat, the work unit count, compile seconds and peak
    RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, nets, start, (obs_dim, n_actions) = _setup(preset, n_agents, starts)
    wm, actor, critic, rm = nets
    gen = torch.Generator().manual_seed(0)
    plan = PlanningConfig(mode="mamba" if case.startswith("no_mpc") else "mag")
    if case.endswith("_bf16"):  # the rollout actors' `planning_dtype: bfloat16`
        for net in nets:
            net.to(torch.bfloat16)
    ppo_cfg = PPOConfig()
    seq_batch = random_sequence_batch(20, 40, n_agents, obs_dim, n_actions, seed=1)
    trainer = WorldModelTrainer(wm, rm)
    actor_opt, critic_opt = make_optimizers(actor, critic, ppo_cfg)

    step = Compiled(imagined_step, compile)

    def imagination() -> None:
        imagine(wm, actor, critic, rm, start, plan, gen, step)

    def learner_update() -> None:
        for _ in range(60):
            trainer.world_model_step(seq_batch)
        for _ in range(60):
            trainer.model_reward_step(seq_batch)
        for _ in range(4):
            synthetic = imagine(wm, actor, critic, rm, start, plan, gen, step)
            ppo_update(actor, critic, actor_opt, critic_opt, synthetic, ppo_cfg, gen)

    synthetic = imagine(wm, actor, critic, rm, start, PlanningConfig(mode="mamba"), gen) if case == "ppo" else None
    work = {
        "mpc": imagination, "no_mpc": imagination, "mpc_bf16": imagination, "no_mpc_bf16": imagination,
        "model_update": lambda: trainer.world_model_step(seq_batch),
        "ppo": lambda: ppo_update(actor, critic, actor_opt, critic_opt, synthetic, ppo_cfg, gen),
        "learner_update": learner_update,
    }[case]
    load = os.getloadavg()[0]
    if compile and case in IMAGINING_CASES:
        imagination()  # compiles the step: `step.compile_seconds` (its first call, compilation included)
    wall, cpu = zip(*(_timed(work) for _ in range(repeats)))
    return {"seconds": list(wall), "cpu_seconds": list(cpu),
            "compile_seconds": step.compile_seconds,
            "kept_transitions": start.deter.shape[0] * plan.rollout_length_k,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "load": max(load, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["paper", "small"], choices=["paper", "small"])
    parser.add_argument("--agents", nargs="+", type=int, default=[3, 5])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--starts", type=int, default=720, help="imagination start states M (reference: 720)")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats per case (median reported)")
    parser.add_argument("--learner-presets", nargs="+", default=["small"], choices=["paper", "small"],
                        help="presets for the learner_update case")
    parser.add_argument("--compile", action="store_true", help="torch.compile the imagined step")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_case(**json.loads(args.worker))))
        return

    rows = ["| preset | N | threads | case | median wall s | median CPU s | kept joint transitions/s | "
            "compile s | peak RSS GiB | load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    for preset in args.presets:
        for n_agents in args.agents:
            for threads in args.threads:
                for case in args.cases:
                    if case == "learner_update" and preset not in args.learner_presets:
                        continue
                    spec = dict(case=case, preset=preset, n_agents=n_agents, threads=threads, starts=args.starts,
                                repeats=args.repeats, compile=args.compile)
                    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True,
                                          capture_output=True, text=True)
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                    median = statistics.median(result["seconds"])
                    rate = (f"{result['kept_transitions'] / median:,.0f}" if "mpc" in case else "")
                    row = (f"| {preset} | {n_agents} | {threads} | {case} | {median:.2f} | "
                           f"{statistics.median(result['cpu_seconds']):.2f} | {rate} | "
                           f"{result['compile_seconds']:.1f} | "
                           f"{result['peak_rss_gib']:.2f} | {result['load']:.1f} |")
                    rows.append(row)
                    print(row, flush=True)


if __name__ == "__main__":
    main()
