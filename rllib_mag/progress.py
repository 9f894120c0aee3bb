"""What `rllib train` prints: one row per training iteration with the numbers a user watches, and a short summary
per trial at the end (first vs last win rate and return, the checkpoint, and the commands to run next)."""

from __future__ import annotations

import math
import sys
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


class ProgressTable(tune.Callback):
    """A `tune.Callback` that prints a row per result (unless `rows=False`, when Tune's own output is on) and
    remembers each trial's first and last results for `summary`."""

    def __init__(self, rows: bool = True, out: TextIO = sys.stdout) -> None:
        self.rows, self.out = rows, out
        self.first: dict[str, Mapping[str, Any]] = {}
        self.last: dict[str, Mapping[str, Any]] = {}
        self._printed_header = False

    def _row(self, cells: list[str]) -> str:
        widths = [max(len(header), 10) for header in ("trial", *COLUMNS)]
        widths[0] = 28
        return "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width)
                         in enumerate(zip(cells, widths)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.first.setdefault(str(trial), result)
        self.last[str(trial)] = result
        if not self.rows:
            return
        if not self._printed_header:
            print(self._row(["trial", *COLUMNS]), file=self.out, flush=True)
            self._printed_header = True
        cells = [format_value(result_value(result, key), spec) for key, spec in COLUMNS.values()]
        print(self._row([str(trial)[:28], *cells]), file=self.out, flush=True)

    def summary(self, trial: Any) -> str:
        """Lines about one finished trial: status, what changed between its first and last results, where its
        checkpoint and logs are, and the commands to look at them."""
        name = str(trial)
        lines = [f"trial {name}: {trial.status}"]
        first, last = self.first.get(name), self.last.get(name)
        if first is not None and last is not None:
            for label, key in (("win rate", "env_runners/win_rate"), ("return", "env_runners/episode_return_mean")):
                spec = COLUMNS[label][1]
                lines.append(f"  {label}: {format_value(result_value(first, key), spec)} (iteration "
                             f"{result_value(first, 'training_iteration')}) -> "
                             f"{format_value(result_value(last, key), spec)} (iteration "
                             f"{result_value(last, 'training_iteration')})")
            lines.append(f"  env steps: {format_value(result_value(last, 'num_env_steps_sampled_lifetime'), '{:d}')}"
                         f", time: {format_value(result_value(last, 'time_total_s'), '{:.0f}')} s")
        lines.append(f"  results:    {trial.path}")
        checkpoint = trial.checkpoint
        if checkpoint is not None:
            lines.append(f"  checkpoint: {checkpoint.path}")
            lines.append(f"  evaluate:   rllib evaluate {checkpoint.path} --episodes 32")
        lines.append(f"  curves:     tensorboard --logdir {trial.path}")
        if trial.status == "ERROR":
            lines.append(f"  error:      {trial.path}/error.txt")
        return "\n".join(lines)
