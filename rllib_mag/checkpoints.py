"""Integrity of MAG algorithm checkpoints (`algo.save_to_path`, Tune's `checkpoint_*` folders).

RLlib restores the components it finds and silently skips missing ones: a checkpoint without `learner_group/`
would train on freshly initialised networks, and a truncated state file fails with a bare `UnpicklingError`.
`check_files` names what is missing before a restore; `unreadable_file` names the damaged file after one failed.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

#: Where an algorithm checkpoint keeps the learner's module (single-module MAG checkpoints).
MODULE_DIR = Path("learner_group/learner/rl_module/default_policy")

#: Files every MAG checkpoint holds: algorithm state (D_e, counters, RNG), learner (optimizers, entropy
#: schedule, D_m), its networks, and the env runner (connector states).
REQUIRED_FILES = (
    Path("rllib_checkpoint.json"), Path("class_and_ctor_args.pkl"), Path("algorithm_state.pkl"),
    Path("learner_group/state.pkl"), Path("learner_group/learner/state.pkl"), MODULE_DIR / "module_state.pkl",
    Path("env_runner/state.pkl"),
)


class CheckpointError(ValueError):
    """A checkpoint is missing a file or holds a damaged one (the message names it)."""


def check_files(path: str | Path) -> None:
    """Raise `CheckpointError` naming the first of `REQUIRED_FILES` missing or empty under `path`."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a folder: pass a checkpoint_NNNNNN folder "
                              "of a trial, or the path given to algo.save_to_path")
    for relative in REQUIRED_FILES:
        file = path / relative
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {relative} is missing (a restore would "
                                  "silently start from fresh networks or empty buffers); restore an earlier "
                                  "checkpoint_NNNNNN folder")
        if file.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {path} is damaged: {relative} is empty; restore an earlier "
                                  "checkpoint_NNNNNN folder")


def unreadable_file(path: str | Path) -> tuple[Path, Exception] | None:
    """The first state file under `path` that does not load (pickle or JSON), with its error; None if all load."""
    for file in sorted(Path(path).rglob("*")):
        if file.suffix not in (".pkl", ".json"):
            continue
        try:
            with file.open("rb") as stream:
                pickle.load(stream) if file.suffix == ".pkl" else json.load(stream)
        except Exception as err:  # noqa: BLE001 - any failure to load means the file is damaged
            return file, err
    return None
