"""Learning curves on SMAX: MAG vs MAMBA (the same code, planning off) vs RLlib PPO, for one env-step budget.

Every (algo, map, seed) run trains in its own spawned subprocess with its own Ray instance
(``ray.init(num_cpus=2)``). The subprocess builds the algorithm (``config.build_algo()``) and calls ``train()``
until ``num_env_steps_sampled_lifetime >= --env-steps``. Each iteration is appended as one JSON line to
``<out>/<algo>_<map>_seed<s>.jsonl``, and the file ends with a ``finished`` line. A rerun skips finished runs
whose settings match and restarts the others.

One iteration line holds:

- ``env_steps``, ``episodes`` (finished in this iteration), ``win_rate`` (``env_runners/win_rate``) and
  ``episode_return_mean``. Under RLlib 2.60's metrics these are means over the episodes that finished *during this
  iteration* (windowed stats are cleared on every reduce), so MAG's (one episode per iteration) are single episodes;
- ``team_return``: the mean over agents of ``env_runners/agent_episode_return(s)_mean``. Every agent gets the one
  team reward, so this is the team's return for MAG and PPO alike. PPO's ``episode_return_mean`` is N times it,
  because a multi-agent episode sums its N agents;
- ``elapsed_s``: wall-clock seconds since the run started (before ``build_algo``), and ``iteration_s``;
- MAG/MAMBA only: ``phase_s``, the seconds spent in each phase during this iteration (``timers/<phase>``), and ``learner_updates`` (lifetime).

Curves and final values are therefore episode-weighted means over a trailing window of env steps, the same for
every algorithm: ``SMOOTHING_STEPS`` (one PPO iteration) for the plots, ``FINAL_STEPS`` for the final values.
Plots (``<plot-dir>/learning_curves_<map>.png``): win rate and team return vs env steps, one line per algo with
the mean over seeds and min/max shading. The markdown table gives the final win rate and return (mean ± std over
seeds), the median wall-clock time to the budget and, for MAG/MAMBA, the median split of one iteration by phase
(the first iteration, warm-up and JAX compilation, is left out).

Full benchmark (2 maps x 3 algos x 3 seeds, 20k env steps each)::

    .venv/bin/python benchmarks/learning_curves.py
    .venv/bin/python benchmarks/learning_curves.py --plot-only   # rebuild plots + table from the JSON lines
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load BLAS; inherited by Ray workers
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import math
import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALGOS = ("mag", "mamba", "ppo")
LABELS = {"mag": "MAG", "mamba": "MAMBA (MAG, planning off)", "ppo": "PPO (RLlib, masked)"}
PHASES = ("sample", "model_training", "imagination", "policy_training", "sync_weights")
SMOOTHING_STEPS = 2_000  # plotted value at x: the episodes that finished in (x - SMOOTHING_STEPS, x]
FINAL_STEPS = 4_000  # final value: the episodes that finished in the last FINAL_STEPS env steps
PROGRESS_EVERY_S = 30.0

#: MAG/MAMBA (YAML key names): tuned_examples/mag_smax_2s3z.yaml with one imagination round per update and one
#: learner update per 400 env steps, so 3 seeds x 2 maps x 3 algorithms fit in about an hour on 2 cores.
MAG_CONFIG: dict[str, Any] = {
    "world_model_preset": "small", "world_model_train_steps": 20, "model_reward_train_steps": 20,
    "batch_size_B": 16, "batch_length_T": 20, "warmup_steps": 500, "imagination_starts_M": 256,
    "rollout_length_k": 15, "planning_horizon_H": 6, "planning_candidates_L": 4,
    "policy_rounds": 1, "ppo_minibatch_size": 1000, "num_env_runners": 0, "num_model_rollout_actors": 1,
    "num_cpus_per_rollout_actor": 1, "training_ratio": 1 / 400,
}
#: PPO: tuned_examples/ppo_smax_2s3z.yaml with a local env runner and smaller batches (10 iterations per 20k steps).
PPO_CONFIG: dict[str, Any] = {
    "num_env_runners": 0, "num_envs_per_env_runner": 1, "train_batch_size_per_learner": 2000,
    "minibatch_size": 500, "num_epochs": 5, "lr": 5e-4, "gamma": 0.99, "lambda": 0.95, "entropy_coeff": 0.01,
    "vf_loss_coeff": 0.5, "_model_config": {"fcnet_hiddens": [128, 128], "vf_share_layers": False},
}


@dataclass
class Run:
    """One training run; `config` holds every config key the benchmark sets (YAML names)."""

    algo: str
    map_name: str
    seed: int
    env_steps: int
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.algo}_{self.map_name}_seed{self.seed}"


def make_runs(args: argparse.Namespace) -> list[Run]:
    runs = []
    for map_name in args.maps:
        for algo in args.algos:
            if algo == "ppo":
                config = {**PPO_CONFIG, "env_config": {"map_name": map_name, "invalid_actions": "replace"}}
            else:
                config = {**MAG_CONFIG, **args.mag_config, "mode": algo, "env_config": {"map_name": map_name}}
            runs += [Run(algo, map_name, seed, args.env_steps, config) for seed in args.seeds]
    return runs


# ---- one run (in a subprocess) -----------------------------------------------------------------------------
def build_algo(run: Run) -> Any:
    from rllib_mag import MAGConfig, MaskedPPOConfig

    if run.algo == "ppo":
        config = MaskedPPOConfig().environment("smax")
    else:
        config = MAGConfig().environment("smax_team")
    return config.update_from_dict(run.config).debugging(seed=run.seed).build_algo()


def finite(value: Any) -> float | None:
    """`value` as a float, or None when missing or NaN (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def iteration_row(run: Run, result: dict[str, Any], elapsed_s: float, iteration_s: float) -> dict[str, Any]:
    runners = result.get("env_runners", {})
    # The single-agent runner (MAG's team view) logs "agent_episode_return_mean", the multi-agent one "..._returns_...".
    by_agent = runners.get("agent_episode_return_mean") or runners.get("agent_episode_returns_mean") or {}
    agent_returns = [value for value in by_agent.values() if math.isfinite(value)]
    row = {"event": "iteration", "iteration": result["training_iteration"],
           "env_steps": int(result["num_env_steps_sampled_lifetime"]), "episodes": int(runners.get("num_episodes", 0)),
           "win_rate": finite(runners.get("win_rate")),
           "episode_return_mean": finite(runners.get("episode_return_mean")),
           "team_return": float(np.mean(agent_returns)) if agent_returns else None,
           "elapsed_s": elapsed_s, "iteration_s": iteration_s}
    if run.algo != "ppo":
        row["phase_s"] = {phase: finite(result["timers"].get(phase)) or 0.0 for phase in PHASES}
        row["learner_updates"] = int(result["mag"]["num_learner_updates_lifetime"])
    return row


def write_line(file: TextIO, record: dict[str, Any]) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()


def train_run(run: Run, path: Path) -> None:
    """Subprocess body: train `run` to its env-step budget, writing one JSON line per iteration to `path`."""
    import ray
    import torch

    import rllib_mag

    torch.set_num_threads(1)
    rllib_mag.register()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        algo = build_algo(run)
        with path.open("w") as file:
            write_line(file, {"event": "start", **asdict(run), "build_s": time.perf_counter() - start})
            env_steps, last_print = 0, -math.inf
            while env_steps < run.env_steps:
                iteration_start = time.perf_counter()
                result = algo.train()
                now = time.perf_counter()
                row = iteration_row(run, result, now - start, now - iteration_start)
                write_line(file, row)
                env_steps = row["env_steps"]
                if now - last_print >= PROGRESS_EVERY_S or env_steps >= run.env_steps:
                    last_print = now
                    print(f"[{run.name}] iter {row['iteration']:4d}  env steps {env_steps:6d}/{run.env_steps}  "
                          f"win rate {fmt(row['win_rate'], 2)}  team return {fmt(row['team_return'], 2)}  "
                          f"elapsed {row['elapsed_s']:6.0f} s", flush=True)
            write_line(file, {"event": "finished", "env_steps": env_steps, "elapsed_s": time.perf_counter() - start})
        algo.stop()
    finally:
        ray.shutdown()


# ---- orchestration -------------------------------------------------------------------------------------------
def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def is_finished(path: Path, run: Run) -> bool:
    """True if `path` holds a finished run with exactly `run`'s settings."""
    lines = read_lines(path)
    if not lines or lines[-1]["event"] != "finished":
        return False
    header = lines[0]
    return all(header.get(key) == value for key, value in json.loads(json.dumps(asdict(run))).items())


def run_all(runs: list[Run], out: Path) -> list[str]:
    """Train every unfinished run in a spawned subprocess, one after another; returns the names of failed runs."""
    out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    failed = []
    for run in runs:
        path = out / f"{run.name}.jsonl"
        if is_finished(path, run):
            print(f"[{run.name}] already finished in {path}, skipped", flush=True)
            continue
        print(f"[{run.name}] starting ({run.env_steps} env steps)", flush=True)
        process = context.Process(target=train_run, args=(run, path))
        process.start()
        process.join()
        if process.exitcode != 0:
            print(f"[{run.name}] FAILED (exit code {process.exitcode}); partial curve in {path}", flush=True)
            failed.append(run.name)
    return failed


# ---- plots and table -----------------------------------------------------------------------------------------
def load_finished(out: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Finished runs under `out`, keyed by (map, algo): each a dict with its header and iteration rows."""
    curves: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in sorted(out.glob("*.jsonl")):
        lines = read_lines(path)
        if not lines or lines[-1]["event"] != "finished":
            print(f"note: {path.name} is not finished, left out")
            continue
        header = lines[0]
        rows = [line for line in lines if line["event"] == "iteration"]
        curves.setdefault((header["map_name"], header["algo"]), []).append({"header": header, "rows": rows})
    return curves


def windowed(rows: list[dict[str, Any]], key: str, steps: int) -> np.ndarray:
    """Rows (env steps, mean of `key` over the episodes that finished in the trailing `steps` env steps)."""
    points = []
    for end in rows:
        window = [row for row in rows if end["env_steps"] - steps < row["env_steps"] <= end["env_steps"]
                  and row["episodes"] and row[key] is not None]
        if window:
            weights = [row["episodes"] for row in window]
            points.append((end["env_steps"], np.average([row[key] for row in window], weights=weights)))
    return np.array(points, dtype=float).reshape(-1, 2)


def on_common_grid(runs: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed `key` of every run, interpolated onto the env steps of all runs within the range all cover."""
    series = [s for s in (windowed(run["rows"], key, SMOOTHING_STEPS) for run in runs) if len(s)]
    if not series:
        return np.empty(0), np.empty((0, 0))
    high = min(s[-1, 0] for s in series)
    low = min(max(s[0, 0] for s in series), high)  # runs of one iteration may not overlap: then one point
    grid = np.unique(np.concatenate([s[(s[:, 0] >= low) & (s[:, 0] <= high), 0] for s in series]))
    return grid, np.stack([np.interp(grid, s[:, 0], s[:, 1]) for s in series])


def plot_map(map_name: str, by_algo: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (key, label) in zip(axes, (("win_rate", "win rate"), ("team_return", "team episode return"))):
        for algo, runs in by_algo.items():
            grid, values = on_common_grid(runs, key)
            if not len(grid):
                continue
            line, = ax.plot(grid, values.mean(axis=0), marker="o" if len(grid) <= 30 else None, markersize=3,
                            label=f"{LABELS[algo]}, {len(values)} seed(s)")
            ax.fill_between(grid, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper left")
    fig.suptitle(f"SMAX {map_name}: mean over seeds (min/max shaded) of the episodes finished in the last "
                 f"{SMOOTHING_STEPS} env steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def final_value(rows: list[dict[str, Any]], key: str) -> float | None:
    """Mean of `key` over the episodes that finished in the last FINAL_STEPS env steps of a run."""
    window = [row for row in rows if row["env_steps"] > rows[-1]["env_steps"] - FINAL_STEPS
              and row["episodes"] and row[key] is not None]
    if not window:
        return None
    return float(np.average([row[key] for row in window], weights=[row["episodes"] for row in window]))


def mean_std(values: list[float | None], digits: int) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def phase_split(runs: list[dict[str, Any]]) -> str:
    """Median over seeds of the mean seconds per iteration in each phase (first iteration left out)."""
    per_seed: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "other", "total")}
    for run in runs:
        rows = run["rows"][1:] or run["rows"]
        total = sum(row["iteration_s"] for row in rows)
        phases = {phase: sum(row["phase_s"][phase] for row in rows) for phase in PHASES}
        for phase, seconds in {**phases, "other": total - sum(phases.values()), "total": total}.items():
            per_seed[phase].append(seconds / len(rows))
    median = {phase: statistics.median(values) for phase, values in per_seed.items()}
    parts = [f"{phase} {100 * median[phase] / median['total']:.0f}%" for phase in (*PHASES, "other")]
    return f"{median['total']:.2f} s: " + ", ".join(parts)


def summary_table(curves: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    lines = ["| map | algo | seeds | env steps | final win rate | final team return | time to budget (median) | "
             "one iteration (median): mean s, split by phase |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for (map_name, algo), runs in sorted(curves.items(), key=lambda item: (item[0][0], ALGOS.index(item[0][1]))):
        budget = runs[0]["header"]["env_steps"]
        time_s = statistics.median(run["rows"][-1]["elapsed_s"] for run in runs)
        split = phase_split(runs) if algo != "ppo" else "—"
        lines.append(f"| {map_name} | {LABELS[algo]} | {len(runs)} | {budget} | "
                     f"{mean_std([final_value(run['rows'], 'win_rate') for run in runs], 2)} | "
                     f"{mean_std([final_value(run['rows'], 'team_return') for run in runs], 1)} | "
                     f"{time_s / 60:.1f} min | {split} |")
    return "\n".join(lines)


def report(out: Path, plot_dir: Path) -> None:
    curves = load_finished(out)
    if not curves:
        print(f"no finished runs under {out}")
        return
    for map_name in sorted({map_name for map_name, _ in curves}):
        by_algo = {algo: curves[(map_name, algo)] for algo in ALGOS if (map_name, algo) in curves}
        plot_map(map_name, by_algo, plot_dir / f"learning_curves_{map_name}.png")
    print()
    print(summary_table(curves))
    print(f"\nFinal: per seed, the mean over the episodes of the last {FINAL_STEPS} env steps; then mean ± std over "
          "seeds. Team return: the return of the one team reward (PPO's episode_return_mean is N times it). "
          "Time to budget includes building the algorithm. Iteration split: MAG's timers summed per iteration, "
          "mean over iterations after the first, median over seeds; other = the rest of train().")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", nargs="+", default=["2s3z", "3s_vs_3z"])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=20_000, help="env-step budget of every run")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "learning_curves",
                        help="directory of the per-run JSON-lines files")
    parser.add_argument("--plot-dir", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--mag-config", type=json.loads, default={},
                        help='JSON dict of MAG/MAMBA config keys to override, e.g. \'{"policy_rounds": 4}\'')
    parser.add_argument("--plot-only", action="store_true", help="only rebuild plots and table from --out")
    args = parser.parse_args()

    failed = [] if args.plot_only else run_all(make_runs(args), args.out)
    report(args.out, args.plot_dir)
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    main()
