"""Ctrl-C during `rllib train`: a clean stop with a final checkpoint of every running trial.

Tune's own SIGINT handler ends the run at once, so the trials keep only their last periodic checkpoint. Here the
first Ctrl-C asks every running trial to checkpoint after its current iteration (Tune's `should_checkpoint`
result key); once all have saved, Tune is interrupted as on its own signal (SIGUSR1), so the trials stay
unfinished and `rllib train file X.yaml --resume` continues them from those checkpoints. A second Ctrl-C stops at
once, as Tune does.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from ray.tune import Callback
from ray.tune.result import SHOULD_CHECKPOINT


class GracefulInterrupt(Callback):
    """A Tune callback that turns the first SIGINT into "checkpoint every running trial, then stop"."""

    def __init__(self) -> None:
        self.requested = False  # the first Ctrl-C arrived
        self.interrupted = False  # Tune was told to stop
        self._asked: set[str] = set()  # trials told to checkpoint after their current result
        self._saved: set[str] = set()

    def install(self) -> None:
        """Replace Tune's SIGINT handler (before `tune.run_experiments`, in the main thread)."""
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:  # second Ctrl-C: Tune's immediate stop
            print("\nCtrl-C again: stopping now, without waiting for checkpoints", file=sys.stderr, flush=True)
            self._interrupt()
            return
        self.requested = True
        print("\nCtrl-C: every running trial checkpoints after its current iteration, then training stops "
              "(Ctrl-C again to stop now)", file=sys.stderr, flush=True)

    def _interrupt(self) -> None:
        self.interrupted = True
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's interrupt: trials stay resumable

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.requested and trial.trial_id not in self._asked:
            result[SHOULD_CHECKPOINT] = True
            self._asked.add(trial.trial_id)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        if trial.trial_id in self._asked:
            self._saved.add(trial.trial_id)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not self.requested or self.interrupted:
            return
        running = {trial.trial_id for trial in trials if trial.status == "RUNNING"}
        if running <= self._saved:
            self._interrupt()
