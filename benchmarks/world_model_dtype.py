"""One world-model step in float32 and under bf16 autocast (`world_model_dtype`), side by side.

Each case runs ``--steps`` timed steps after ``--warmup`` untimed ones on one fixed random batch with 2s3z sizes
(N=5 agents, 80 obs dims, 11 actions; B x T=20)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/world_model_dtype.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rllib_mag.learning import WorldModelTrainer
from rllib_mag.models import WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor

N_AGENTS, OBS_DIM, N_ACTIONS, LENGTH = 5, 80, 11, 20
#: Batch size B of each preset's schedule (tuned examples: 16; the paper: 40).
BATCH = {"small": 16, "paper": 40}


def median_seconds(step: Callable[[], object], steps: int, warmup: int) -> float:
    """Median seconds of ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print("| preset | batch | case | median s | vs float32 |\n|---|---|---|---|---|")
    for preset in args.presets:
        torch.manual_seed(0)
        cfg = from_preset(preset)
        batch = random_sequence_batch(LENGTH, BATCH[preset], N_AGENTS, OBS_DIM, N_ACTIONS, structured=True)
        rows = {}
        for name, dtype in (("world-model step, float32", None), ("world-model step, bf16 autocast", torch.bfloat16)):
            trainer = WorldModelTrainer(WorldModel(cfg, OBS_DIM, N_ACTIONS), ModelRewardPredictor(cfg),
                                        autocast_dtype=dtype)
            rows[name] = median_seconds(lambda: trainer.world_model_step(batch), args.steps, args.warmup)
        base = rows["world-model step, float32"]
        for name, median in rows.items():
            print(f"| {preset} | B={BATCH[preset]} | {name} | {median:.3f} | {base / median:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
