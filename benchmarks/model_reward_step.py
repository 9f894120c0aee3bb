"""Cost of one R_m training step (Algorithm 1 line 5) by label: the released code's ``posterior`` label vs this
fix's ``candidate`` label with 1 and 4 candidates per real row, next to one world-model step for scale, in float32
and under bf16 autocast (``world_model_dtype: bfloat16``).

Each case runs ``--steps`` timed steps after ``--warmup`` untimed ones on one fixed random batch (2s3z sizes:
N=5 agents, 80 obs dims, 11 actions; T=20) and prints the median in ms and the ratio to the ``posterior`` label::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/model_reward_step.py

``--no-autocast`` leaves out the bf16 column: on CPUs without bf16 matrix units (no AVX-512 BF16 / AMX) an
autocast world-model step at paper size takes tens of seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rllib_mag.learning.world_model_trainer import WorldModelTrainer
from rllib_mag.models import WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardLabel, ModelRewardPredictor

N_AGENTS, OBS_DIM, N_ACTIONS, LENGTH = 5, 80, 11, 20
#: Batch size B of each preset's schedule (tuned examples: 16; the paper: 40).
BATCH = {"small": 16, "paper": 40}


def median_ms(step: Callable[[], object], steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-autocast", action="store_true", help="leave out the bf16-autocast world-model step")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    labels = {"posterior": ModelRewardLabel("posterior"), "candidate x1 (default)": ModelRewardLabel(model_reward_label_candidates=1),
              "candidate x4": ModelRewardLabel(model_reward_label_candidates=4)}
    print("| preset | B | world-model step (ms) | world-model step, bf16 autocast (ms) | "
          + " | ".join(f"R_m step, {name} (ms)" for name in labels) + " |")
    print("|---|---|---|---|" + "---|" * len(labels))
    for preset in args.presets:
        torch.manual_seed(0)
        cfg = from_preset(preset)
        world_model = WorldModel(cfg, OBS_DIM, N_ACTIONS)
        batch = random_sequence_batch(LENGTH, BATCH[preset], N_AGENTS, OBS_DIM, N_ACTIONS, structured=True)
        trainer = WorldModelTrainer(world_model, ModelRewardPredictor(cfg))
        model_ms = median_ms(lambda: trainer.world_model_step(batch), args.steps, args.warmup)
        autocast_cell = "—"
        if not args.no_autocast:
            autocast = WorldModelTrainer(WorldModel(cfg, OBS_DIM, N_ACTIONS), ModelRewardPredictor(cfg),
                                         autocast_dtype=torch.bfloat16)
            autocast_ms = median_ms(lambda: autocast.world_model_step(batch), args.steps, args.warmup)
            autocast_cell = f"{autocast_ms:.1f} ({model_ms / autocast_ms:.2f}x)"
        cells = {}
        for name, label in labels.items():
            trainer = WorldModelTrainer(world_model, ModelRewardPredictor(cfg), label)
            cells[name] = median_ms(lambda: trainer.model_reward_step(batch), args.steps, args.warmup)
        base = cells["posterior"]
        print(f"| {preset} | {BATCH[preset]} | {model_ms:.1f} | {autocast_cell} | "
              + " | ".join(f"{ms:.1f} ({ms / base:.2f}x)" for ms in cells.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
