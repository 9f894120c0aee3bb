"""What `rllib train` prints: one row per training iteration with the numbers a user watches, and a short summary
per trial at the end (first vs last win rate and return, the checkpoint, and the commands to run next)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from ray import tune

#: Progress columns: header -> (result key, format). Keys are `/`-paths into the (nested) result dict.
COLUMNS: dict[str, tuple[str, str]] = {
    "iter": ("training_iteration", "{:d}"),
    "env steps": ("num_env_steps_sampled_lifetime", "{:d}"),
    "win rate": ("env_runners/win_rate", "{:.2f}"),
    "return": ("env_runners/episode_return_mean", "{:.2f}"),
    "model loss": ("world_model/model_loss", "{:.3f}"),
    "time s": ("time_total_s", "{:.0f}"),
}


def result_value(result: Mapping[str, Any], key: str) -> Any:
    """`result["a"]["b"]` for `key="a/b"` (nested results) or `result["a/b"]` (flattened ones); None if absent."""
    if key in result:
        return result[key]
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def format_value(value: Any, spec: str) -> str:
    """`spec`-formatted number; `-` where an iteration has none (no finished episode, no model step yet)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return spec.format(int(value) if spec == "{:d}" else float(value))


#: The summary compares the mean of a column's first and last this-many known values (one iteration's episodes
#: are few, so a single value is noisy).
SUMMARY_ITERATIONS = 10


def _mean_of(points: list[tuple[Any, Any]], spec: str) -> str:
    """`"6.12 (mean of iterations 181-190)"` for `(value, iteration)` points."""
    mean = sum(float(value) for value, _ in points) / len(points)
    first, last = points[0][1], points[-1][1]
    span = f"iteration {first}" if first == last else f"iterations {first}-{last}"
    return f"{format_value(mean, spec)} (mean of {span})" if len(points) > 1 else f"{format_value(mean, spec)} ({span})"


class ProgressTable(tune.Callback):
    """A `tune.Callback` that prints each trial's latest numbers at most every `interval_s` seconds and once more
    when it ends (unless `rows=False`, when Tune's own output is on), and keeps each column's known values for
    `summary`. A column keeps its last value through iterations that have none (no episode
    finished, no learner update)."""

    def __init__(self, rows: bool = True, interval_s: float = 10.0, out: TextIO = sys.stdout) -> None:
        self.rows, self.interval_s, self.out = rows, interval_s, out
        self.history: dict[str, dict[str, list[tuple[Any, Any]]]] = {}  # trial -> key -> [(value, iteration)]
        self.latest: dict[str, dict[str, tuple[Any, Any]]] = {}
        self._printed: dict[str, tuple[float, Any]] = {}  # trial -> (time, iteration) of its last printed row
        self._printed_header = False

    def _row(self, cells: list[str]) -> str:
        widths = [max(len(header), 10) for header in ("trial", *COLUMNS)]
        widths[0] = 28
        return "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width)
                         in enumerate(zip(cells, widths)))

    def _print_row(self, name: str) -> None:
        if not self._printed_header:
            print(self._row(["trial", *COLUMNS]), file=self.out, flush=True)
            self._printed_header = True
        latest = self.latest[name]
        cells = [format_value(latest.get(key, (None,))[0], spec) for key, spec in COLUMNS.values()]
        print(self._row([name[:28], *cells]), file=self.out, flush=True)
        self._printed[name] = (time.monotonic(), latest["training_iteration"][0])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        name = str(trial)
        at = result_value(result, "training_iteration")
        for key, _ in COLUMNS.values():
            value = result_value(result, key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.history.setdefault(name, {}).setdefault(key, []).append((value, at))
                self.latest.setdefault(name, {})[key] = (value, at)
        if self.rows and name in self.latest and (name not in self._printed or
                                                  time.monotonic() - self._printed[name][0] >= self.interval_s):
            self._print_row(name)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = str(trial)
        if self.rows and name in self.latest and self._printed.get(name, (0, None))[1] != \
                self.latest[name]["training_iteration"][0]:
            self._print_row(name)

    on_trial_error = on_trial_complete

    def summary(self, trial: Any) -> str:
        """Lines about one finished trial: status, what changed between its first and last results, where its
        checkpoint and logs are, and the commands to look at them."""
        name = str(trial)
        lines = [f"trial {name}: {trial.status}"]
        history, latest = self.history.get(name, {}), self.latest.get(name, {})
        for label in ("win rate", "return"):
            key, spec = COLUMNS[label]
            if key in history:
                lines.append(f"  {label}: {_mean_of(history[key][:SUMMARY_ITERATIONS], spec)} -> "
                             f"{_mean_of(history[key][-SUMMARY_ITERATIONS:], spec)}")
        if latest:
            steps = latest.get("num_env_steps_sampled_lifetime", (None,))[0]
            seconds = latest.get("time_total_s", (None,))[0]
            lines.append(f"  env steps: {format_value(steps, '{:d}')}, time: {format_value(seconds, '{:.0f}')} s")
        lines.append(f"  results:    {trial.path}")
        checkpoint = trial.checkpoint
        if checkpoint is not None:
            lines.append(f"  checkpoint: {checkpoint.path}")
            if str(trial.config.get("env", "")).endswith("_team"):
                lines.append(f"  evaluate:   rllib evaluate {checkpoint.path} --episodes 32")
        lines.append(f"  curves:     rllib plot {trial.path}   or   tensorboard --logdir {trial.path}")
        if trial.status == "ERROR":
            lines.append(f"  error:      {trial.path}/error.txt")
        return "\n".join(lines)
