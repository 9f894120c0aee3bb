"""Ground-truth model error of MAG's planner on SMAX (the paper's Figures 3-5, measured against the simulator).

Three resumable phases; each writes one file per (map, seed) and skips files that already exist:

1. **train** a MAG checkpoint per map and seed in its own subprocess and Ray instance: the settings of
   ``tuned_examples/mag_smax_2s3z.yaml`` (small preset, B=16, T=20, M=256, k=15, H=6, L=4) with the learning-curve
   benchmark's lighter schedule (one learner update per 400 env steps, one policy round), ``--env-steps`` each.
   Saved as ``<checkpoints>/<map>_seed<s>.pt``: the rollout networks' state dicts, the world-model settings, the
   team sizes and D_e (the checkpoint's real replay rows).
2. **measure** each checkpoint (``rllib_mag.analysis.model_error``), into ``<data>/<map>_seed<s>.json``:
   - Figure 3 with ground truth: true accumulated error by step, MAG vs MAMBA, same starts, 95% bootstrap CIs and
     the paired MAMBA - MAG difference, with R_m's predicted version beside it;
   - R_m's rank correlation with the true candidate errors, for the checkpoint's R_m and for two fresh R_m trained
     on the checkpoint's D_e and world model with the ``"candidate"`` label (this fix) and the ``"posterior"`` label
     (before the fix, the released code's), and MAG's true error when planning with each of them;
   - Figures 4-5 on true error: accumulated error at step k for H in {1, 2, 4, 6} (L=4) and L in {1, 2, 4, 8}
     (H=6), plus the planner's score discount in {1.0, 0.9, 0.7}.
3. **report**: ``docs/model_error.md`` and PNG plots in ``docs/img/`` rebuilt from the JSON files.

Full run (2 maps x 3 seeds, 20k env steps each: 5 to 10 min of training and about 3 min of measuring per
checkpoint on 2 cores, about 1 h in all)::

    .venv/bin/python benchmarks/model_error.py
    .venv/bin/python benchmarks/model_error.py --phases report   # rebuild the doc and plots from the JSON files
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load BLAS; inherited by Ray workers
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
TUNED_EXAMPLE = REPO / "tuned_examples" / "mag_smax_2s3z.yaml"
#: The learning-curve benchmark's schedule on top of the tuned example (benchmarks/learning_curves.py), and the
#: R_m label samples per real row the checkpoints in docs/model_error.md were trained with (the default then).
CHECKPOINT_LABEL_CANDIDATES = 4
SCHEDULE: dict[str, Any] = {"policy_rounds": 1, "training_ratio": 1 / 400,
                            "model_reward_label_candidates": CHECKPOINT_LABEL_CANDIDATES}
HORIZONS = (1, 2, 4, 6)
CANDIDATES = (1, 2, 4, 8)
SCORE_DISCOUNTS = (1.0, 0.9, 0.7)
#: The R_m networks the ablations plan with: the checkpoint's and a fresh one with the observable-error label.
ABLATION_MODEL_REWARDS = ("checkpoint", "candidate_obs_reward")
#: Fresh R_m trained on a checkpoint's D_e for the before/after comparison: this fix's label, the released code's
#: (before the fix), and the fix's label without the latent term (only what the simulator can check: obs + reward).
RM_TRAIN_STEPS = 400


def fresh_labels() -> dict[str, Any]:
    from rllib_mag.planning.model_reward import ModelRewardLabel

    return {"candidate": ModelRewardLabel("candidate", model_reward_label_candidates=CHECKPOINT_LABEL_CANDIDATES),
            "posterior": ModelRewardLabel("posterior"),
            "candidate_obs_reward": ModelRewardLabel("candidate", ("reconstruction", "reward"),
                                                     model_reward_label_candidates=CHECKPOINT_LABEL_CANDIDATES)}


def tuned_config(map_name: str) -> dict[str, Any]:
    experiment = next(iter(yaml.safe_load(TUNED_EXAMPLE.read_text()).values()))
    return {**experiment["config"], **SCHEDULE, "env_config": {"map_name": map_name}}


# ---- phase 1: train (in a subprocess) ---------------------------------------------------------------------------
def train_checkpoint(map_name: str, seed: int, env_steps: int, path: Path) -> None:
    """Subprocess body: train MAG to `env_steps` and save the networks and D_e to `path`."""
    import ray
    import torch

    from ray.rllib.core import DEFAULT_MODULE_ID

    from rllib_mag import MAGConfig

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        config = MAGConfig().environment("smax_team").update_from_dict(tuned_config(map_name)).debugging(seed=seed)
        algo = config.build_algo()
        steps, last_print = 0, time.perf_counter()
        while steps < env_steps:
            result = algo.train()
            steps = int(result["num_env_steps_sampled_lifetime"])
            if time.perf_counter() - last_print > 30 or steps >= env_steps:
                last_print = time.perf_counter()
                print(f"[{map_name} seed {seed}] env steps {steps}/{env_steps}, win rate "
                      f"{result['env_runners'].get('win_rate', float('nan')):.2f}, "
                      f"{last_print - start:.0f} s", flush=True)
        results = algo.learner_group.foreach_learner(lambda learner: learner.rollout_weights())
        weights = next(w for w in (result.get() for result in results) if w is not None)
        spaces = algo.env_runner_group.get_spaces()[DEFAULT_MODULE_ID][0]
        torch.save({"map_name": map_name, "seed": seed, "env_steps": steps, "train_s": time.perf_counter() - start,
                    "world_model_settings": config.world_model_settings(), "observation_space": spaces,
                    "weights": weights, "real_buffer": algo.real_buffer.get_state(),
                    "config": tuned_config(map_name)}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
        algo.stop()
    finally:
        ray.shutdown()


def train_all(maps: list[str], seeds: list[int], env_steps: int, checkpoints: Path) -> None:
    checkpoints.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    for map_name in maps:
        for seed in seeds:
            path = checkpoints / f"{map_name}_seed{seed}.pt"
            if path.exists():
                continue
            process = context.Process(target=train_checkpoint, args=(map_name, seed, env_steps, path))
            process.start()
            process.join()
            if process.exitcode != 0:
                raise RuntimeError(f"training {path.name} failed with exit code {process.exitcode}")


# ---- phase 2: measure -------------------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> tuple[dict[str, Any], Any]:
    """The saved checkpoint and its `Networks` (CPU, float32)."""
    import torch

    from rllib_mag.algorithm.catalog import MAGCatalog
    from rllib_mag.analysis.model_error import Networks

    saved = torch.load(path, weights_only=False)
    catalog = MAGCatalog(saved["observation_space"], saved["world_model_settings"])
    networks = Networks(catalog.build_world_model(), catalog.build_actor(), catalog.build_model_reward())
    for name, network in networks._asdict().items():
        network.load_state_dict(saved["weights"][name])
    return saved, networks


def fresh_model_reward(saved: dict[str, Any], networks: Any, label: Any, seed: int) -> Any:
    """A new R_m trained for `RM_TRAIN_STEPS` on the checkpoint's D_e and world model with `label`."""
    import torch

    from rllib_mag.algorithm.replay import SequenceReplayBuffer
    from rllib_mag.learning.world_model_trainer import WorldModelTrainer
    from rllib_mag.planning.model_reward import ModelRewardPredictor

    config, rows = saved["config"], saved["real_buffer"]["rows"]
    buffer = SequenceReplayBuffer(len(rows["reward"]), *rows["obs"].shape[1:], rows["action_mask"].shape[-1])
    buffer.set_state(saved["real_buffer"])
    torch.manual_seed(seed)
    model_reward = ModelRewardPredictor(networks.world_model.cfg)
    trainer = WorldModelTrainer(networks.world_model, model_reward, label)
    rng = np.random.default_rng(seed)
    for _ in range(RM_TRAIN_STEPS):
        batch = buffer.sample(config["batch_size_B"], config["batch_length_T"], rng)
        trainer.model_reward_step({key: torch.as_tensor(value) for key, value in batch.items()})
    return model_reward.eval()


def _summary(report: Any, mode: str = "mag") -> dict[str, Any]:
    """Accumulated errors at step k (each part, with CIs), the MAMBA - MAG differences at step k when MAMBA ran,
    and R_m's rank correlations of one evaluation."""
    result = report.modes[mode]
    return {"final": {part: values[-1] for part, values in result.accumulated.items()},
            "final_ci": {part: values[-1] for part, values in result.accumulated_ci.items()},
            "difference": {part: values[-1] for part, values in report.difference.items()},
            "difference_ci": {part: values[-1] for part, values in report.difference_ci.items()},
            "rm_spearman": report.rm_spearman, "rm_spearman_obs": report.rm_spearman_obs}


def measure_checkpoint(path: Path, num_starts: int) -> dict[str, Any]:
    """Every measurement of one checkpoint (see the module docstring), as a JSON-ready dict."""
    import torch

    from rllib_mag.analysis.model_error import ModelErrorConfig, collect_starts, evaluate_model_error
    from rllib_mag.envs.team import TeamView
    from rllib_mag.planning.imagination import PlanningConfig

    torch.set_num_threads(1)
    start_time = time.perf_counter()
    saved, networks = load_checkpoint(path)
    config = saved["config"]
    view = TeamView.from_config({**config["env_config"], "backend": "smax"})
    planning = PlanningConfig(**{key: config[key] for key in ("rollout_length_k", "planning_horizon_H",
                                                              "planning_candidates_L")})
    eval_config = ModelErrorConfig(num_starts=num_starts, seed=1000 + saved["seed"])
    starts = collect_starts(view, networks, num_starts, eval_config.keep_probability, eval_config.seed)

    def evaluate(nets: Any = networks, modes: tuple[str, ...] = ("mag", "mamba"), **changes: Any) -> Any:
        return evaluate_model_error(view, nets, replace(planning, **changes), eval_config, modes, starts)

    main = evaluate(modes=("mag", "mamba", "oracle"))
    model_rewards = {"checkpoint": networks.model_reward}
    labels = {}
    for name, label in fresh_labels().items():
        model_rewards[name] = fresh_model_reward(saved, networks, label, saved["seed"])
        labels[name] = _summary(evaluate(networks._replace(model_reward=model_rewards[name])))
    ablations = {}
    for name in ABLATION_MODEL_REWARDS:
        nets = networks._replace(model_reward=model_rewards[name])
        ablations[name] = {
            "horizon": {h: _summary(evaluate(nets, ("mag",), planning_horizon_H=h)) for h in HORIZONS},
            "candidates": {n: _summary(evaluate(nets, ("mag",), planning_candidates_L=n)) for n in CANDIDATES},
            "score_discount": {d: _summary(evaluate(nets, ("mag",), planning_discount=d)) for d in SCORE_DISCOUNTS},
        }
    return {"map_name": saved["map_name"], "seed": saved["seed"], "env_steps": saved["env_steps"],
            "train_s": saved["train_s"], "num_starts": num_starts, "planning": planning.__dict__,
            "main": main.to_dict(), "fresh_model_reward": labels, "ablations": ablations,
            "rm_train_steps": RM_TRAIN_STEPS, "measure_s": time.perf_counter() - start_time}


def measure_all(maps: list[str], seeds: list[int], num_starts: int, checkpoints: Path, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for map_name in maps:
        for seed in seeds:
            out, path = data / f"{map_name}_seed{seed}.json", checkpoints / f"{map_name}_seed{seed}.pt"
            if out.exists() or not path.exists():
                continue
            result = measure_checkpoint(path, num_starts)
            out.write_text(json.dumps(result, indent=1))
            finals = {mode: values["accumulated"]["total"][-1] for mode, values in result["main"]["modes"].items()}
            print(f"[{map_name} seed {seed}] measured in {result['measure_s']:.0f} s: true accumulated error at "
                  f"step k {finals}; R_m Spearman {result['main']['rm_spearman']:.2f}", flush=True)


# ---- phase 3: report --------------------------------------------------------------------------------------------
def _ci(values: list[float]) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _verdict(low: float, high: float) -> str:
    return "**MAG lower**" if low > 0 else "**MAG higher**" if high < 0 else "not resolved"


ERROR_PARTS = {"total": "obs + reward", "obs": "observation", "reward": "reward"}
COLORS = {"mag": "tab:blue", "mamba": "tab:orange", "oracle": "tab:green"}
LABELS = {"mag": "MAG (R_m planner)", "mamba": "MAMBA (no planner)", "oracle": "oracle selection (true error)"}


def ablation_ratios(result: dict[str, Any], source: str, key: str, values: Any) -> list[float]:
    """True accumulated error (obs + reward) at step k of each ablation value over MAMBA's on the same starts."""
    mamba = result["main"]["modes"]["mamba"]["accumulated"]["total"][-1]
    return [result["ablations"][source][key][str(v)]["final"]["total"] / mamba for v in values]


def plot_map(map_name: str, results: list[dict[str, Any]], img: Path) -> list[str]:
    """Figure 3 (true error by part, the MAMBA - MAG differences) and the ablations for one map; PNG names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    for ax, (part, label) in zip(axes, ERROR_PARTS.items()):
        for mode in results[0]["main"]["modes"]:
            curves = np.array([r["main"]["modes"][mode]["accumulated"][part] for r in results])
            bounds = np.array([r["main"]["modes"][mode]["accumulated_ci"][part] for r in results])  # [seeds, k, 2]
            steps = np.arange(1, curves.shape[1] + 1)
            for curve in curves:
                ax.plot(steps, curve, color=COLORS[mode], alpha=0.25, lw=1)
            ax.plot(steps, curves.mean(0), color=COLORS[mode], lw=2, label=LABELS[mode])
            ax.fill_between(steps, bounds[..., 0].mean(0), bounds[..., 1].mean(0), color=COLORS[mode], alpha=0.12)
        ax.set(xlabel="imagined step", ylabel="accumulated true error", title=f"{map_name}: {label} error")
    axes[0].legend(fontsize=7)
    ax = axes[3]
    for part, style in (("total", "-"), ("obs", ":")):
        for index, r in enumerate(results):
            diff, bounds = np.array(r["main"]["difference"][part]), np.array(r["main"]["difference_ci"][part])
            steps = np.arange(1, len(diff) + 1)
            ax.plot(steps, diff, color=f"C{index + 3}", ls=style, lw=2, label=f"{ERROR_PARTS[part]}, seed {r['seed']}")
            ax.fill_between(steps, bounds[:, 0], bounds[:, 1], color=f"C{index + 3}", alpha=0.1)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(xlabel="imagined step", ylabel="MAMBA - MAG accumulated true error", title="> 0: MAG lower (95% CI)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    names = [f"model_error_fig3_{map_name}.png"]
    fig.savefig(img / names[0], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharex="col")
    for row, source in enumerate(ABLATION_MODEL_REWARDS):
        for ax, (key, label) in zip(axes[row], (("horizon", "planning horizon H (L=4)"),
                                                ("candidates", "candidates L (H=6)"),
                                                ("score_discount", "score discount (H=6, L=4)"))):
            values = sorted(results[0]["ablations"][source][key], key=float)
            ratios = np.array([ablation_ratios(r, source, key, values) for r in results])
            x = [float(v) for v in values]
            for seed_values in ratios:
                ax.plot(x, seed_values, "o", color=COLORS["mag"], alpha=0.4)
            ax.plot(x, ratios.mean(0), "-", color=COLORS["mag"], lw=2, label=f"MAG, {source} R_m, mean of seeds")
            ax.axhline(1.0, color=COLORS["mamba"], ls="--", label="MAMBA")
            ax.set(xlabel=label, ylabel="true error at step k / MAMBA's")
        axes[row][0].legend(fontsize=7)
    fig.suptitle(f"{map_name}: planner ablations on true accumulated error (Figures 4-5)")
    fig.tight_layout()
    names.append(f"model_error_ablations_{map_name}.png")
    fig.savefig(img / names[1], dpi=100)
    plt.close(fig)
    return names


def write_report(maps: list[str], data: Path, doc: Path) -> None:
    """`doc` and its plots from the JSON files in `data` (hand-written notes: `data/notes.md`, included)."""
    img = doc.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    by_map = {m: [json.loads(p.read_text()) for p in sorted(data.glob(f"{m}_seed*.json"))] for m in maps}
    by_map = {m: rs for m, rs in by_map.items() if rs}
    if not by_map:
        raise SystemExit(f"no results in {data}; run the train and measure phases first")
    first = next(iter(by_map.values()))[0]
    train_s = [r["train_s"] for results in by_map.values() for r in results]
    plan = first["planning"]  # `PlanningConfig` fields; files written before they took MAGConfig's names say "horizon"
    horizon, candidates = (plan.get(new, plan.get(old)) for new, old in (("planning_horizon_H", "horizon"),
                                                                          ("planning_candidates_L", "candidates")))
    k = len(first["main"]["modes"]["mag"]["accumulated"]["total"])
    lines = ["# Model error of MAG's planner, measured against the simulator", "",
             "Generated by `benchmarks/model_error.py` from the JSON files in `docs/data/model_error/` (one per map "
             "and seed); the method is in the docstrings of the script and of `rllib_mag/analysis/model_error.py`.",
             "", "Command: `.venv/bin/python benchmarks/model_error.py` (train, measure and report; the defaults are "
             "the run shown: 2 maps x 3 seeds); `--phases report` rebuilds this page from the JSON files.", "",
             "Checkpoints: the `tuned_examples/mag_smax_2s3z.yaml` settings on each map (R_m with this fix's "
             f"`candidate` label) with one learner update per 400 env steps, {first['env_steps']} env steps each "
             f"({min(train_s) / 60:.0f} to {max(train_s) / 60:.0f} min each on 2 cores). Each measurement: {first['num_starts']} kept SMAX "
             f"states, k = {k} imagined steps, H = {horizon}, L = {candidates}. MAG and MAMBA imagine from the same starts with the same weights "
             "and generator seed; each imagined action sequence is replayed in SMAX. Error per step: Huber(decoded "
             "obs, simulator obs) averaged over obs dims (*observation*) plus Huber(predicted reward, simulator "
             "reward) (*reward*), over the agents alive in the simulator. *Oracle selection*: the planner keeps, "
             "among L candidates, the one with the lowest true one-step error (the simulator in lockstep), the best "
             "any R_m could do one step ahead. 95% CIs: bootstrap over the starts (paired for the differences).", ""]
    notes = data / "notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    lines += [f"## Figure 3 with ground truth: accumulated true error at step {k}", "",
              "| map | seed | error | MAG | MAMBA | oracle selection | MAMBA - MAG [95% CI] | verdict | "
              "MAMBA - MAG as R_m sees it |", "|---|---|---|---|---|---|---|---|---|"]
    for map_name, results in by_map.items():
        for r in results:
            main, modes = r["main"], r["main"]["modes"]
            for part, label in ERROR_PARTS.items():
                low, high = main["difference_ci"][part][-1]
                rm = f"{main['difference']['rm'][-1]:+.3f}" if part == "total" else ""
                lines.append(f"| {map_name} | {r['seed']} | {label} | "
                             + " | ".join(f"{modes[m]['accumulated'][part][-1]:.3f}"
                                          for m in ("mag", "mamba", "oracle"))
                             + f" | {main['difference'][part][-1]:+.3f} {_ci([low, high])} | {_verdict(low, high)} "
                               f"| {rm} |")
    lines += ["", "*As R_m sees it*: the same rollouts scored by the checkpoint's R_m, the network that chose MAG's "
              "states (the only version the paper's Figure 3 could show; `planning/accumulated_error_step_NN` in "
              "training). Imagined actions that SMAX's mask forbids (imagined masks are samples of the availability "
              "head): " + ", ".join(f"{m} {r['main']['modes']['mag']['invalid_action_rate']:.0%} (MAG) / "
                                    f"{r['main']['modes']['mamba']['invalid_action_rate']:.0%} (MAMBA)"
                                    for m, rs in by_map.items() for r in rs[:1]) + " of the alive agents' actions "
              "(seed 0).", ""]
    for map_name, results in by_map.items():
        fig3, _ = plot_map(map_name, results, img)
        lines += [f"![{map_name} Figure 3](img/{fig3})", ""]
    fresh = list(first["fresh_model_reward"])
    lines += ["## R_m's ranking of candidates against their true errors, and the label it learns from", "",
              "Spearman correlation between R_m's scores of 16 candidate latents sharing the first imagined h and the "
              "candidates' true errors (mean over starts). *Fresh*: a new R_m trained for "
              f"{first['rm_train_steps']} steps on the checkpoint's D_e and world model with each label: `candidate` "
              "(this fix, the default), `posterior` (the released code's label: before the fix), "
              "`candidate_obs_reward` (the fix's label without the latent term, i.e. the paper's formula "
              "sum ||o' - o|| + ||R' - R||, only what the simulator can check).", "",
              "| map | seed | checkpoint R_m: total [95% CI] | obs part | reward part | "
              + " | ".join(f"fresh `{name}`: total / obs" for name in fresh) + " |",
              "|---|---|---|---|---|" + "---|" * len(fresh)]
    for map_name, results in by_map.items():
        for r in results:
            main, labels = r["main"], r["fresh_model_reward"]
            lines.append(f"| {map_name} | {r['seed']} | {main['rm_spearman']:.2f} {_ci(main['rm_spearman_ci'])} | "
                         f"{main['rm_spearman_obs']:.2f} | {main['rm_spearman_reward']:.2f} | "
                         + " | ".join(f"{labels[n]['rm_spearman']:.2f} / {labels[n]['rm_spearman_obs']:.2f}"
                                      for n in fresh) + " |")
    lines += ["", f"MAG planning with each fresh R_m: MAMBA - MAG true accumulated error (obs + reward) at step {k}, "
              "95% CI paired over the same starts (> 0: MAG lower).", "",
              "| map | seed | MAMBA | " + " | ".join(f"MAG with `{name}`: MAMBA - MAG [95% CI]" for name in fresh)
              + " |", "|---|---|---|" + "---|" * len(fresh)]
    for map_name, results in by_map.items():
        for r in results:
            labels = r["fresh_model_reward"]
            cells = [f"{labels[n]['difference']['total']:+.3f} {_ci(labels[n]['difference_ci']['total'])} "
                     f"{_verdict(*labels[n]['difference_ci']['total'])}" for n in fresh]
            mamba = r["main"]["modes"]["mamba"]["accumulated"]["total"][-1]
            lines.append(f"| {map_name} | {r['seed']} | {mamba:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Figures 4-5 on true error: horizon, candidates, score discount", "",
              "True accumulated error (obs + reward) at step k in MAG mode divided by MAMBA's on the same starts "
              "(< 1: MAG lower), mean ± sd over seeds, planning with the checkpoint's R_m and with the fresh "
              "`candidate_obs_reward` R_m. L=1 is MAMBA's imagination.", "",
              "| map | R_m | " + " | ".join(f"H={h}" for h in HORIZONS) + " | "
              + " | ".join(f"L={n}" for n in CANDIDATES) + " | " + " | ".join(f"discount {d}" for d in SCORE_DISCOUNTS)
              + " |", "|---|---|" + "---|" * (len(HORIZONS) + len(CANDIDATES) + len(SCORE_DISCOUNTS))]
    for map_name, results in by_map.items():
        for source in ABLATION_MODEL_REWARDS:
            cells = []
            for key, values in (("horizon", HORIZONS), ("candidates", CANDIDATES), ("score_discount", SCORE_DISCOUNTS)):
                ratios = np.array([ablation_ratios(r, source, key, values) for r in results])
                cells += [_mean_sd(list(column)) for column in ratios.T]
            lines.append(f"| {map_name} | {source} | " + " | ".join(cells) + " |")
    lines.append("")
    for map_name in by_map:
        lines += [f"![{map_name} ablations](img/model_error_ablations_{map_name}.png)", ""]
    doc.write_text("\n".join(lines))
    print(f"wrote {doc}")


# ---- command line -------------------------------------------------------------------------------------------
PHASES = ("train", "measure", "report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", nargs="+", default=["3s_vs_3z", "2s3z"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=20_000, help="env steps per training run")
    parser.add_argument("--starts", type=int, default=256, help="kept simulator states per measurement")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--checkpoints", type=Path, default=REPO / "benchmarks" / "results" / "model_error")
    parser.add_argument("--data", type=Path, default=REPO / "docs" / "data" / "model_error")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "model_error.md")
    args = parser.parse_args()
    if "train" in args.phases:
        train_all(args.maps, args.seeds, args.env_steps, args.checkpoints)
    if "measure" in args.phases:
        measure_all(args.maps, args.seeds, args.starts, args.checkpoints, args.data)
    if "report" in args.phases:
        write_report(args.maps, args.data, args.doc)


if __name__ == "__main__":
    main()
