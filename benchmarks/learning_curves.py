"""Learning curves on SMAX: MAG vs MAMBA (the same code, planning off) vs RLlib PPO, under greedy evaluation.

Protocol (docs/benchmarks.md, "Learning curves"):

- every (algorithm, map, seed) trains in its own spawned subprocess with its own Ray instance and one torch thread,
  ``--parallel`` (2) runs at a time, until ``num_env_steps_sampled_lifetime >= --steps``;
- at env steps 0, ``--eval-every``, 2 x ``--eval-every``, ... (at the end of the first iteration that reaches each
  point) the run calls ``Algorithm.evaluate()``: ``--eval-episodes`` greedy episodes (``explore: False``, argmax of
  the masked logits) on a separate evaluation env runner, reported under RLlib's ``evaluation/`` keys. They never
  enter D_e and do not advance the training env-step counter (``tests/algorithm/test_greedy_evaluation.py``);
- MAG and MAMBA share one schedule (``MAG_SCHEDULE``: the same learner updates per env step, the same work per
  update), PPO gets the same env-step budget;
- the aggregate (``rliable``): per map and over all maps, the interquartile mean (IQM) of the greedy win rate,
  the team return and the area under the win-rate curve over seeds with 95% stratified-bootstrap confidence
  intervals at ``--steps`` / 4, / 2 and the end, the probability of improvement P(MAG > MAMBA) with its
  interval, and performance profiles of the win rate at the same points.

Results: one small JSON file per run, ``<out>/<algo>_<map>_seed<s>.json``, written (atomically) only when the run
reaches its budget; progress goes to ``<name>.partial.jsonl`` (git-ignored) meanwhile, so a run cut off by the end
of a sitting leaves nothing that looks complete. A rerun skips runs whose file exists with the same settings.
``--commit`` commits each result file as its run finishes. ``--plot-only`` rebuilds the plots and tables from the
files::

    .venv/bin/python benchmarks/learning_curves.py                          # 3 maps x 3 algorithms x 5 seeds, 40k
    .venv/bin/python benchmarks/learning_curves.py --maps 3s_vs_5z --seeds 3 --steps 20000   # any other SMAX map
    .venv/bin/python benchmarks/learning_curves.py --plot-only
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load BLAS; inherited by Ray workers
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")  # SMAX (JAX)

import argparse
import functools
import json
import math
import multiprocessing
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "learning_curves"
ALGOS = ("mag", "mamba", "ppo")
LABELS = {"mag": "MAG", "mamba": "MAMBA (MAG, planning off)", "ppo": "PPO (RLlib, masked)"}
METRICS = {"win_rate": "greedy win rate", "team_return": "greedy team return"}  # the curves
#: The aggregate's metrics: the curves' values at a point, and the area under the win-rate curve up to it (the
#: mean over the evaluations at 0, eval_every, ..., point): sample efficiency, and steadier than one point.
TABLE_METRICS = {**METRICS, "win_rate_auc": "greedy win rate, mean of the curve up to here"}
PAIRED_METRICS = ("win_rate", "win_rate_auc")  # the paired (by seed) MAG - MAMBA table's metrics
PHASES = ("sample", "model_training", "imagination", "policy_training", "sync_weights")
TRAINING_BIN_STEPS = 1_000  # training-episode stats are kept per bin of env steps (the file stays small)
BOOTSTRAP_REPS = 2_000
PROFILE_TAUS = np.linspace(0.0, 1.0, 21)  # win-rate thresholds of the performance profiles
PROGRESS_EVERY_S = 60.0

#: MAG and MAMBA (YAML key names): the `small` preset, one learner update per `1 / training_ratio` env steps of
#: 20 world-model + 20 R_m steps and one round of M=720 imagined starts (k=15) + PPO. docs/benchmarks.md states
#: it as a fraction of the paper's learner work per env step.
MAG_SCHEDULE: dict[str, Any] = {
    "world_model_preset": "small", "world_model_train_steps": 20, "model_reward_train_steps": 20,
    "batch_size_B": 16, "batch_length_T": 20, "warmup_steps": 500, "imagination_starts_M": 720,
    "rollout_length_k": 15, "planning_horizon_H": 6, "planning_candidates_L": 4, "policy_rounds": 1,
    "ppo_minibatch_size": 2000, "episodes_per_iteration": 1, "training_ratio": 1 / 100,
    "num_env_runners": 0, "num_model_rollout_actors": 0,
}
#: PPO: tuned_examples/ppo_smax_2s3z.yaml with a local env runner (20 iterations per 40k env steps).
PPO_CONFIG: dict[str, Any] = {
    "num_env_runners": 0, "num_envs_per_env_runner": 1, "train_batch_size_per_learner": 2000,
    "minibatch_size": 500, "num_epochs": 5, "lr": 5e-4, "gamma": 0.99, "lambda": 0.95, "entropy_coeff": 0.01,
    "vf_loss_coeff": 0.5, "_model_config": {"fcnet_hiddens": [128, 128], "vf_share_layers": False},
}


def evaluation_config(episodes: int) -> dict[str, Any]:
    """RLlib evaluation settings: `episodes` greedy episodes on one evaluation env runner, only when called."""
    return {"evaluation_num_env_runners": 1, "evaluation_interval": None, "evaluation_duration": episodes,
            "evaluation_duration_unit": "episodes", "evaluation_config": {"explore": False}}


@dataclass
class Run:
    """One training run; `config` holds every config key the benchmark sets (YAML names)."""

    algo: str
    map_name: str
    seed: int
    steps: int
    eval_every: int
    eval_episodes: int
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.algo}_{self.map_name}_seed{self.seed}"

    def settings(self) -> dict[str, Any]:
        """The run as JSON would give it back (tuples become lists), for comparison with a result file."""
        return json.loads(json.dumps(asdict(self)))


def make_runs(maps: list[str], algos: list[str], seeds: int, steps: int, eval_every: int, eval_episodes: int,
              mag_overrides: dict[str, Any]) -> list[Run]:
    """Every (map, seed, algorithm) run, seed by seed within a map, so a study cut short holds every algorithm
    on the same seeds."""
    runs = []
    for map_name in maps:
        for seed in range(seeds):
            for algo in algos:
                if algo == "ppo":
                    config = {**PPO_CONFIG, "env_config": {"map_name": map_name, "invalid_actions": "replace"}}
                else:
                    config = {**MAG_SCHEDULE, **mag_overrides, "mode": algo, "env_config": {"map_name": map_name}}
                config.update(evaluation_config(eval_episodes))
                runs.append(Run(algo, map_name, seed, steps, eval_every, eval_episodes, config))
    return runs


# ---- one run (in a subprocess) -----------------------------------------------------------------------------
def algorithm_config(run: Run) -> Any:
    """The run's RLlib config (not built)."""
    from rllib_mag import MAGConfig, MaskedPPOConfig

    config = MaskedPPOConfig().environment("smax") if run.algo == "ppo" else MAGConfig().environment("smax_team")
    return config.update_from_dict(run.config).debugging(seed=run.seed)


def check_configs(runs: list[Run]) -> None:
    """Validate every run's config (maps, `--mag-config` keys and values) before the first run starts."""
    import rllib_mag

    rllib_mag.register()
    for run in {(run.algo, run.map_name): run for run in runs}.values():
        algorithm_config(run).validate()


def finite(value: Any) -> float | None:
    """`value` as a float, or None when missing or NaN (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def episode_stats(runners: dict[str, Any]) -> dict[str, Any]:
    """Episodes, win rate and team return of one result's `env_runners` (training or evaluation).

    The team view (MAG) logs `agent_episode_return_mean`, the multi-agent env (PPO) `agent_episode_returns_mean`;
    every agent gets the one team reward, so their mean is the team's return (PPO's `episode_return_mean` is N
    times it).
    """
    by_agent = runners.get("agent_episode_return_mean") or runners.get("agent_episode_returns_mean") or {}
    agent_returns = [value for value in by_agent.values() if math.isfinite(value)]
    return {"episodes": int(float(runners.get("num_episodes", 0))), "win_rate": finite(runners.get("win_rate")),
            "team_return": float(np.mean(agent_returns)) if agent_returns else None,
            "episode_len": finite(runners.get("episode_len_mean"))}


def write_line(file: TextIO, record: dict[str, Any]) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()


class TrainingBins:
    """Training-episode win rate and team return, episode-weighted, per `TRAINING_BIN_STEPS` of env steps (a
    metric the result lacks is left out of its bin's mean, not counted as 0)."""

    def __init__(self) -> None:
        self.bins: dict[int, dict[str, list[float]]] = {}

    def add(self, env_steps: int, stats: dict[str, Any]) -> None:
        if not stats["episodes"]:
            return
        end = -(-env_steps // TRAINING_BIN_STEPS) * TRAINING_BIN_STEPS
        bin_ = self.bins.setdefault(end, {key: [0.0, 0.0] for key in ("episodes", "win_rate", "team_return")})
        bin_["episodes"][0] += stats["episodes"]
        for key in ("win_rate", "team_return"):
            if stats[key] is not None:
                bin_[key][0] += stats["episodes"] * stats[key]
                bin_[key][1] += stats["episodes"]

    def rows(self) -> list[dict[str, Any]]:
        return [{"env_steps": end, "episodes": int(b["episodes"][0]),
                 **{key: b[key][0] / b[key][1] if b[key][1] else None for key in ("win_rate", "team_return")}}
                for end, b in sorted(self.bins.items())]


def train_run(run: Run, out: Path) -> None:
    """Subprocess body: train `run` to its budget with greedy evaluations; write `<name>.json` at the end."""
    import ray
    import torch

    import rllib_mag

    torch.set_num_threads(1)
    rllib_mag.register()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    partial = out / f"{run.name}.partial.jsonl"
    try:
        start = time.perf_counter()
        algo = algorithm_config(run).build_algo()
        evaluations, training, phase_s = [], TrainingBins(), dict.fromkeys(PHASES, 0.0)
        env_steps, iterations, learner_updates, last_print = 0, 0, 0, -math.inf
        with partial.open("w") as progress:
            write_line(progress, {"event": "start", **run.settings(), "build_s": time.perf_counter() - start})
            while True:
                while env_steps >= len(evaluations) * run.eval_every and len(evaluations) * run.eval_every <= run.steps:
                    eval_start = time.perf_counter()
                    stats = episode_stats(algo.evaluate()["env_runners"])
                    evaluations.append({"target_steps": len(evaluations) * run.eval_every, "env_steps": env_steps,
                                        **stats, "eval_s": time.perf_counter() - eval_start,
                                        "elapsed_s": time.perf_counter() - start})
                    write_line(progress, {"event": "evaluation", **evaluations[-1]})
                if env_steps >= run.steps:
                    break
                result = algo.train()
                iterations += 1
                env_steps = int(result["num_env_steps_sampled_lifetime"])
                training.add(env_steps, episode_stats(result.get("env_runners", {})))
                if run.algo != "ppo":
                    for phase in PHASES:
                        phase_s[phase] += finite(result["timers"].get(phase)) or 0.0
                    learner_updates = int(result["mag"]["num_learner_updates_lifetime"])
                now = time.perf_counter()
                if now - last_print >= PROGRESS_EVERY_S:
                    last_print = now
                    latest = evaluations[-1]
                    print(f"[{run.name}] env steps {env_steps:6d}/{run.steps}  greedy win rate "
                          f"{latest['win_rate'] or 0:.2f} at {latest['target_steps']}  "
                          f"elapsed {now - start:6.0f} s", flush=True)
        record = {**run.settings(), "evaluations": evaluations, "training": training.rows(),
                  "iterations": iterations, "learner_updates": learner_updates, "phase_s": phase_s,
                  "elapsed_s": time.perf_counter() - start}
        algo.stop()
        write_result(out / f"{run.name}.json", record)
        partial.unlink()
    finally:
        ray.shutdown()


def write_result(path: Path, record: dict[str, Any]) -> None:
    """Write `record` to `path` atomically: a reader sees the whole file or none."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


# ---- orchestration -------------------------------------------------------------------------------------------
def is_finished(path: Path, run: Run) -> bool:
    """True if `path` holds a finished run with exactly `run`'s settings."""
    if not path.exists():
        return False
    record = json.loads(path.read_text())
    return all(record.get(key) == value for key, value in run.settings().items())


def commit(path: Path) -> None:
    """`git add -f` (results/ is git-ignored) + `git commit` of one result file (retried while git is busy)."""
    for attempt in range(5):
        add = subprocess.run(["git", "add", "-f", str(path)], cwd=REPO, capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", f"learning curves: {path.stem}", "--", str(path)], cwd=REPO,
            capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2 + attempt)
    print(f"note: could not commit {path}; commit it by hand", flush=True)


def run_all(runs: list[Run], out: Path, parallel: int, commit_results: bool,
            start_until_s: float = math.inf) -> list[str]:
    """Train every unfinished run, `parallel` spawned subprocesses at a time; returns the names of failed runs.

    No run starts later than `start_until_s` seconds after the call (runs already going are finished), so a
    sitting can end with nothing lost."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    todo = []
    for run in runs:
        if is_finished(out / f"{run.name}.json", run):
            print(f"[{run.name}] already finished, skipped", flush=True)
        else:
            todo.append(run)
    running: dict[str, tuple[Run, Any]] = {}
    failed = []
    while todo or running:
        if todo and time.monotonic() - started >= start_until_s:
            print(f"time limit reached: {len(todo)} runs not started ({', '.join(run.name for run in todo)}); "
                  "rerun the same command to go on", flush=True)
            todo = []
        while todo and len(running) < parallel:
            run = todo.pop(0)
            print(f"[{run.name}] starting ({run.steps} env steps)", flush=True)
            running[run.name] = (run, context.Process(target=train_run, args=(run, out)))
            running[run.name][1].start()
        time.sleep(1.0)
        for name, (run, process) in list(running.items()):
            if process.is_alive():
                continue
            del running[name]
            if process.exitcode != 0:
                print(f"[{name}] FAILED (exit code {process.exitcode}); progress in {name}.partial.jsonl", flush=True)
                failed.append(name)
            else:
                print(f"[{name}] finished", flush=True)
                if commit_results:
                    commit(out / f"{name}.json")
    return failed


# ---- aggregation (rliable) -----------------------------------------------------------------------------------
def load_results(out: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Finished runs under `out`, keyed by (map, algo), sorted by seed."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in sorted(out.glob("*.json")):
        record = json.loads(path.read_text())
        results.setdefault((record["map_name"], record["algo"]), []).append(record)
    for records in results.values():
        records.sort(key=lambda record: record["seed"])
    return results


def score_at(record: dict[str, Any], metric: str, target_steps: int) -> float:
    """The greedy evaluation's `metric` at the evaluation point `target_steps` (NaN if the run has none there);
    `<metric>_auc`: the mean of `metric` over the evaluation points up to `target_steps`."""
    if metric.endswith("_auc"):
        base = metric.removesuffix("_auc")
        points = [e["target_steps"] for e in record["evaluations"] if e["target_steps"] <= target_steps]
        return float(np.mean([score_at(record, base, point) for point in points])) if target_steps in points \
            else float("nan")
    for evaluation in record["evaluations"]:
        if evaluation["target_steps"] == target_steps and evaluation[metric] is not None:
            return float(evaluation[metric])
    return float("nan")


def score_matrix(records_by_map: dict[str, list[dict[str, Any]]], metric: str, target_steps: int) -> np.ndarray:
    """rliable's layout: [runs, tasks], one column per map (runs beyond the fewest seeds of any map dropped)."""
    seeds = min(len(records) for records in records_by_map.values())
    return np.array([[score_at(records[run], metric, target_steps) for records in records_by_map.values()]
                     for run in range(seeds)])


def iqm_interval(scores: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> tuple[float, float, float]:
    """IQM of a [runs, tasks] score matrix and its 95% stratified-bootstrap CI (rliable)."""
    from rliable import library, metrics

    np.random.seed(seed)  # rliable's bootstrap draws from NumPy's global generator
    point, interval = library.get_interval_estimates(
        {"x": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def improvement_interval(x: np.ndarray, y: np.ndarray, reps: int = BOOTSTRAP_REPS,
                         seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) (ties count half; mean over tasks) and its 95% stratified-bootstrap CI (rliable)."""
    from rliable import library, metrics

    np.random.seed(seed)
    point, interval = library.get_interval_estimates({"xy": (x, y)}, metrics.probability_of_improvement, reps=reps)
    low, high = np.ravel(interval["xy"])
    return float(point["xy"]), float(low), float(high)


def win_rate_profile(scores: np.ndarray, reps: int = BOOTSTRAP_REPS,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Performance profile (rliable): the fraction of runs of a [runs, tasks] matrix whose score exceeds each of
    `PROFILE_TAUS`, and its 95% stratified-bootstrap CI ([2, taus])."""
    from rliable import library

    np.random.seed(seed)
    profiles, intervals = library.create_performance_profile({"x": scores}, PROFILE_TAUS, reps=reps)
    return profiles["x"], intervals["x"]


@functools.cache
def fewest_seeds_for_a_verdict(alpha: float = 0.05) -> int:
    """The fewest seeds per algorithm at which two samples *can* differ significantly: complete separation has
    an exact two-sided Mann-Whitney p below `alpha` (4 seeds: p = 0.029; 3 seeds: p = 0.10, 2 seeds: p = 0.33).
    Below it the percentile bootstrap is overconfident: separated samples stay separated in every resample, so
    P(MAG > MAMBA) gets the zero-width interval [1, 1] even from 2 seeds."""
    from scipy import stats

    seeds = 1
    while stats.mannwhitneyu(range(seeds), range(seeds, 2 * seeds), method="exact").pvalue >= alpha:
        seeds += 1
    return seeds


def verdict(probability: tuple[float, float, float], seeds: int) -> str:
    """A plain verdict from P(MAG > MAMBA) and its CI: ahead only if the whole interval is above 1/2; none from
    fewer seeds than `fewest_seeds_for_a_verdict()`."""
    _, low, high = probability
    if seeds < fewest_seeds_for_a_verdict():
        return f"{seeds} seed{'s' if seeds > 1 else ''}: too few for a verdict"
    if low > 0.5:
        return "MAG ahead"
    if high < 0.5:
        return "MAG behind"
    return "no clear difference"


def paired_difference(mag: list[dict[str, Any]], mamba: list[dict[str, Any]], metric: str,
                      point: int) -> dict[str, Any] | None:
    """MAG - MAMBA of `metric` at `point`, seed by seed (a MAG and a MAMBA run of one seed share the env seeds and
    initial networks, so they differ only by planning: common random numbers). The differences by seed, their
    mean, the seeds MAG is ahead / behind on, and the exact two-sided sign-flip p of the mean difference (all
    2^n sign patterns, scipy); None without a seed both have."""
    from scipy import stats

    mamba_by_seed = {record["seed"]: record for record in mamba}
    diffs = {r["seed"]: score_at(r, metric, point) - score_at(mamba_by_seed[r["seed"]], metric, point)
             for r in mag if r["seed"] in mamba_by_seed}
    diffs = {seed: diff for seed, diff in diffs.items() if not math.isnan(diff)}
    if not diffs:
        return None
    values = np.array(list(diffs.values()))
    test = stats.permutation_test((values,), np.mean, permutation_type="samples", n_resamples=np.inf)
    return {"by_seed": diffs, "mean": float(values.mean()), "ahead": int((values > 0).sum()),
            "behind": int((values < 0).sum()), "p": float(test.pvalue)}


def paired_table(results: dict[tuple[str, str], list[dict[str, Any]]], points: list[int]) -> str:
    """Markdown: `paired_difference` per map having MAG and MAMBA, point and `PAIRED_METRICS`."""
    lines = ["| map | env steps | metric | MAG - MAMBA by seed | mean | seeds MAG ahead / behind | exact p |",
             "|---|---:|---|---|---:|---|---:|"]
    for map_name in sorted({m for m, algo in results if algo == "mag" and (m, "mamba") in results}):
        for point in points:
            for metric in PAIRED_METRICS:
                paired = paired_difference(results[(map_name, "mag")], results[(map_name, "mamba")], metric, point)
                if paired is None:
                    continue
                by_seed = ", ".join(f"{seed}: {diff:+.2f}" for seed, diff in sorted(paired["by_seed"].items()))
                lines.append(f"| {map_name} | {point} | {TABLE_METRICS[metric]} | {by_seed} | {paired['mean']:+.2f}"
                             f" | {paired['ahead']} / {paired['behind']} | {paired['p']:.2f} |")
    return "\n".join(lines)


def report_points(steps: int, eval_every: int) -> list[int]:
    """The evaluation points at or below a quarter, a half and all of the budget (10k, 20k, 40k by default)."""
    return sorted({int(steps * fraction) // eval_every * eval_every for fraction in (0.25, 0.5, 1.0)})


def algorithms_and_common_maps(results: dict[tuple[str, str], list[dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """The algorithms with results, and the maps (sorted) that every one of them has."""
    algos = [algo for algo in ALGOS if any(key[1] == algo for key in results)]
    maps = sorted({map_name for map_name, _ in results})
    return algos, [m for m in maps if all((m, algo) in results for algo in algos)]


def aggregate(results: dict[tuple[str, str], list[dict[str, Any]]], points: list[int],
              reps: int = BOOTSTRAP_REPS) -> list[dict[str, Any]]:
    """One row per (task, env-step point, metric): IQM [CI] per algorithm and P(MAG > MAMBA) [CI].

    `task` is a map, or "all maps" (stratified over the maps every algorithm has)."""
    maps = sorted({map_name for map_name, _ in results})
    algos, common = algorithms_and_common_maps(results)
    tasks = [(m, [m]) for m in maps] + ([("all maps", common)] if len(common) > 1 else [])
    rows = []
    for task, task_maps in tasks:
        for point in points:
            for metric in TABLE_METRICS:
                row: dict[str, Any] = {"task": task, "env_steps": point, "metric": metric}
                scores = {}
                for algo in algos:
                    by_map = {m: results[(m, algo)] for m in task_maps if (m, algo) in results}
                    if len(by_map) == len(task_maps):
                        scores[algo] = score_matrix(by_map, metric, point)
                        if not np.isnan(scores[algo]).any():
                            row[algo] = (*iqm_interval(scores[algo], reps), len(scores[algo]))
                if "mag" in row and "mamba" in row:
                    row["p_mag_over_mamba"] = improvement_interval(scores["mag"], scores["mamba"], reps)
                    row["verdict"] = verdict(row["p_mag_over_mamba"], min(len(scores["mag"]), len(scores["mamba"])))
                rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | env steps | metric | " + " | ".join(f"{LABELS[a]}: IQM [95% CI] (seeds)" for a in ALGOS)
             + " | P(MAG > MAMBA) [95% CI] | verdict |", "|---|---:|---|" + "---|" * (len(ALGOS) + 2)]
    for row in rows:
        digits = 1 if row["metric"] == "team_return" else 2
        cells = [f"{row[a][0]:.{digits}f} [{row[a][1]:.{digits}f}, {row[a][2]:.{digits}f}] ({row[a][3]})"
                 if a in row else "—" for a in ALGOS]
        p = row.get("p_mag_over_mamba")
        cells.append(f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]" if p else "—")
        cells.append(row.get("verdict", "—"))
        label = TABLE_METRICS[row["metric"]]
        lines.append(f"| {row['task']} | {row['env_steps']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    """Median wall-clock per run and, for MAG/MAMBA, learner updates and the split of training time by phase."""
    lines = ["| map | algo | runs | env steps | wall-clock (median) | learner updates | phases (share of wall-clock) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for (map_name, algo), records in sorted(results.items(), key=lambda kv: (kv[0][0], ALGOS.index(kv[0][1]))):
        elapsed = statistics.median(record["elapsed_s"] for record in records)
        if algo == "ppo":
            updates, split = "—", "—"
        else:
            updates = f"{statistics.median(record['learner_updates'] for record in records):g}"
            shares = [statistics.median(r["phase_s"][phase] / r["elapsed_s"] for r in records) for phase in PHASES]
            split = ", ".join(f"{phase} {100 * share:.0f}%" for phase, share in zip(PHASES, shares))
        lines.append(f"| {map_name} | {LABELS[algo]} | {len(records)} | {records[0]['steps']} | "
                     f"{elapsed / 60:.1f} min | {updates} | {split} |")
    return "\n".join(lines)


def save_figure(fig: Any, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def plot_map(map_name: str, by_algo: dict[str, list[dict[str, Any]]], path: Path, reps: int = BOOTSTRAP_REPS) -> None:
    """Greedy win rate and team return vs env steps: IQM over seeds with its 95% bootstrap CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (metric, label) in zip(axes, METRICS.items()):
        for algo, records in by_algo.items():
            points = sorted({e["target_steps"] for r in records for e in r["evaluations"]})
            scores = {point: score_matrix({map_name: records}, metric, point) for point in points}
            estimates = [(point, *iqm_interval(s, reps)) for point, s in scores.items() if not np.isnan(s).any()]
            if not estimates:
                continue
            x, iqm, low, high = np.array(estimates).T
            line, = ax.plot(x, iqm, marker="o", markersize=3, label=f"{LABELS[algo]}, {len(records)} seeds")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper left")
    episodes = next(iter(by_algo.values()))[0]["eval_episodes"]
    save_figure(fig, path, f"SMAX {map_name}: IQM over seeds of {episodes} greedy episodes per point "
                "(95% bootstrap CI shaded)")


def plot_profiles(results: dict[tuple[str, str], list[dict[str, Any]]], points: list[int], path: Path,
                  reps: int = BOOTSTRAP_REPS) -> None:
    """Performance profiles of the greedy win rate over every run on the maps all algorithms have, one panel per
    env-step point (rliable's plot, 95% CI shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    algos, maps = algorithms_and_common_maps(results)
    fig, axes = plt.subplots(1, len(points), figsize=(4.5 * len(points), 4), squeeze=False)
    for ax, point in zip(axes[0], points):
        profiles, intervals = {}, {}
        for algo in algos:
            scores = score_matrix({m: results[(m, algo)] for m in maps}, "win_rate", point)
            if not np.isnan(scores).any():
                profiles[LABELS[algo]], intervals[LABELS[algo]] = win_rate_profile(scores, reps)
        plot_utils.plot_performance_profiles(
            profiles, PROFILE_TAUS, performance_profile_cis=intervals, ax=ax,
            colors={LABELS[algo]: f"C{i}" for i, algo in enumerate(ALGOS)}, xlabel=r"greedy win rate $\tau$",
            ylabel=r"fraction of runs with win rate $> \tau$" if point == points[0] else "",
            labelsize="medium", ticklabelsize="small")
        ax.set_title(f"{point} env steps", fontsize="medium")
    axes[0][0].legend(loc="upper right", fontsize="small")
    seeds = min(len(results[(m, algo)]) for m in maps for algo in algos)
    save_figure(fig, path, f"Performance profiles over {', '.join(maps)} ({seeds} seeds per map and algorithm)")


def report(out: Path, plot_dir: Path, reps: int = BOOTSTRAP_REPS) -> list[dict[str, Any]]:
    results = load_results(out)
    if not results:
        print(f"no finished runs under {out}")
        return []
    for map_name in sorted({map_name for map_name, _ in results}):
        by_algo = {algo: results[(map_name, algo)] for algo in ALGOS if (map_name, algo) in results}
        plot_map(map_name, by_algo, plot_dir / f"learning_curves_{map_name}.png", reps)
    longest = max((record for records in results.values() for record in records), key=lambda r: r["steps"])
    points = report_points(longest["steps"], longest["eval_every"])
    plot_profiles(results, points, plot_dir / "learning_curves_profiles.png", reps)
    rows = aggregate(results, points, reps)
    print()
    print(markdown_table(rows))
    print()
    print(paired_table(results, points))
    print()
    print(cost_table(results))
    print(f"\nIQM: the mean of the middle 50% of runs (rliable, stratified bootstrap over runs within each map, "
          f"{reps} resamples). Verdict: 'MAG ahead' only if the whole 95% CI of P(MAG > MAMBA) lies above "
          "0.5, 'MAG behind' if below, else 'no clear difference'; no verdict from fewer than "
          f"{fewest_seeds_for_a_verdict()} seeds per algorithm. Paired table: exact two-sided sign-flip test over "
          "seeds; with n seeds no p can be below 2 / 2^n (0.0625 at 5).")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", nargs="+", default=["3s_vs_3z", "2s3z", "3s_vs_4z"])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 per (map, algorithm)")
    parser.add_argument("--steps", type=int, default=40_000, help="env-step budget of every run")
    parser.add_argument("--eval-every", type=int, default=2_000, help="env steps between greedy evaluations")
    parser.add_argument("--eval-episodes", type=int, default=32, help="greedy episodes per evaluation")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of the per-run result files")
    parser.add_argument("--plot-dir", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--mag-config", type=json.loads, default={},
                        help='JSON dict of MAG/MAMBA config keys to override, e.g. \'{"training_ratio": 0.01}\'')
    parser.add_argument("--reps", type=int, default=BOOTSTRAP_REPS, help="bootstrap resamples per interval")
    parser.add_argument("--commit", action="store_true", help="git-commit each result file as its run finishes")
    parser.add_argument("--plot-only", action="store_true", help="only rebuild plots and tables from --out")
    parser.add_argument("--start-until", type=float, default=math.inf, metavar="MINUTES",
                        help="start no run after this many minutes (runs going are finished; rerun to go on)")
    args = parser.parse_args()
    for value, name in ((args.seeds, "--seeds"), (args.steps, "--steps"), (args.eval_every, "--eval-every"),
                        (args.eval_episodes, "--eval-episodes"), (args.parallel, "--parallel"), (args.reps, "--reps")):
        if value < 1:
            parser.error(f"{name} must be a positive integer, got {value}")
    if not args.start_until >= 0:
        parser.error(f"--start-until must be a number of minutes >= 0, got {args.start_until}")
    if not args.plot_only:
        runs = make_runs(args.maps, args.algos, args.seeds, args.steps, args.eval_every, args.eval_episodes,
                         args.mag_config)
        check_configs(runs)
        failed = run_all(runs, args.out, args.parallel, args.commit, 60.0 * args.start_until)
    else:
        failed = []
    report(args.out, args.plot_dir, args.reps)
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    main()
