"""`rllib plot TRIAL_DIR`: a trial's learning curves (win rate, episode return, world-model loss against env
steps; every iteration's value as a dot, a rolling mean of up to 20 as the line) from the `result.json` Tune writes in
every trial folder, as one PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rllib_mag.progress import result_value

#: Panels: title -> result key.
PANELS = {"win rate": "env_runners/win_rate", "episode return": "env_runners/episode_return_mean",
          "world-model loss": "world_model/model_loss"}
STEPS_KEY = "num_env_steps_sampled_lifetime"
SMOOTHING_POINTS = 20


def trial_dirs(path: Path) -> list[Path]:
    """`path` itself if it is a trial folder (has `result.json`), else the trial folders inside it."""
    if (path / "result.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/result.json"))
    if not found:
        raise FileNotFoundError(f"{path} holds no result.json: pass a trial folder, or the experiment folder "
                                "above it (the 'results in ...' path `rllib train` prints)")
    return found


def read_curve(trial: Path) -> dict[str, list[tuple[float, float]]]:
    """`(env steps, value)` points per panel; iterations without a value (no finished episode) are skipped."""
    curves: dict[str, list[tuple[float, float]]] = {title: [] for title in PANELS}
    for line in (trial / "result.json").read_text().splitlines():
        if not line.strip():
            continue
        result = json.loads(line)
        steps = result_value(result, STEPS_KEY)
        for title, key in PANELS.items():
            value = result_value(result, key)
            if steps is not None and isinstance(value, (int, float)) and value == value:
                curves[title].append((float(steps), float(value)))
    return curves


def rolling_mean(values: np.ndarray, points: int = SMOOTHING_POINTS) -> np.ndarray:
    """Mean of the last `points` values at each point (fewer at the start): one iteration's value comes from a
    few episodes, so the raw curve is noisy."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), points)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def plot_trials(path: str | Path, out: str | Path | None = None) -> Path:
    """Plot every trial under `path` into `out` (default: `<path>/learning_curves.png`); returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: pass a trial folder or an experiment folder")
    curves = {trial.name: read_curve(trial) for trial in trial_dirs(path)}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for ax, title in zip(axes, PANELS):
        for name, curve in curves.items():
            if curve[title]:
                steps, values = map(np.asarray, zip(*curve[title]))
                raw = ax.plot(steps, values, ".", alpha=0.25)[0]
                points = max(1, min(SMOOTHING_POINTS, len(values) // 10))  # sparse curves (the loss) barely
                ax.plot(steps, rolling_mean(values, points), color=raw.get_color(), label=name[:40])
        ax.set(title=title, xlabel="env steps")
        ax.grid(alpha=0.3)
    labelled = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if labelled:
        labelled[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(out) if out is not None else path / "learning_curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
