"""Learner steps side by side: one world-model step in float32 vs under bf16 autocast (`world_model_dtype`), and
one PPO pass over an M x k imagined batch with eager vs compiled losses (`compile`), compile time apart.

Each case runs ``--steps`` timed repeats after ``--warmup`` untimed ones (the first compiled call, compilation
included, is reported as ``compile s``) on fixed random data with 2s3z sizes (N=5 agents, 80 obs dims, 11
actions; world-model batches of B x T=20)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learner_steps.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rllib_mag.learning import PPOConfig, WorldModelTrainer, make_optimizers, ppo_update
from rllib_mag.learning.ppo import PPOObjectives
from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, imagine

N_AGENTS, OBS_DIM, N_ACTIONS, LENGTH = 5, 80, 11, 20
#: Batch size B of each preset's schedule (tuned examples: 16; the paper: 40).
BATCH = {"small": 16, "paper": 40}


def timed(step: Callable[[], object], steps: int, warmup: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``steps`` calls after ``warmup`` more)."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--starts", type=int, default=720, help="imagined starts M of the PPO batch")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print("| preset | case | median s | vs first row | compile s |\n|---|---|---|---|---|")
    for preset in args.presets:
        torch.manual_seed(0)
        cfg = from_preset(preset)
        batch = random_sequence_batch(LENGTH, BATCH[preset], N_AGENTS, OBS_DIM, N_ACTIONS, structured=True)
        rows = {}
        for name, dtype in (("world-model step, float32", None), ("world-model step, bf16 autocast", torch.bfloat16)):
            trainer = WorldModelTrainer(WorldModel(cfg, OBS_DIM, N_ACTIONS), ModelRewardPredictor(cfg),
                                        autocast_dtype=dtype)
            rows[name] = (*timed(lambda: trainer.world_model_step(batch), args.steps, args.warmup), 0.0)
        nets = WorldModel(cfg, OBS_DIM, N_ACTIONS), Actor(cfg, N_ACTIONS), AttentionCritic(cfg)
        with torch.no_grad():
            start = nets[0].filter(random_sequence_batch(18, args.starts // 18, N_AGENTS, OBS_DIM, N_ACTIONS))[0]
        synthetic = imagine(*nets, None, start.map(lambda x: x.flatten(0, 1)), PlanningConfig(enabled=False),
                            torch.Generator().manual_seed(0))
        ppo = PPOConfig()
        for name, compile in (("PPO pass (5 epochs), eager", False), ("PPO pass (5 epochs), compiled", True)):
            objectives = PPOObjectives(compile)
            opts = make_optimizers(nets[1], nets[2], ppo)
            first, median = timed(lambda: ppo_update(nets[1], nets[2], *opts, synthetic, ppo,
                                                     objectives=objectives), max(1, args.steps // 5), 0)
            rows[name] = (first, median, objectives.take_compile_seconds())
        base = {}
        for name, (_, median, compile_s) in rows.items():
            kind = name.split(",")[0]
            base.setdefault(kind, median)
            print(f"| {preset} | {name} | {median:.3f} | {base[kind] / median:.2f}x | {compile_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
