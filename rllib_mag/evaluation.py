"""`rllib evaluate`: greedy episodes of a trained MAG policy from an algorithm checkpoint.

The policy is the checkpoint's learner module (world-model filter + actor, `MAGTorchRLModule.forward_inference`:
argmax of the masked logits). Episodes run in a local copy of the training env (the checkpoint's `env` and
`env_config`, `--map` to change the map), so nothing starts Ray. The win rate comes with a 95% Wilson score
interval; `render` writes one SMAX episode as an animated GIF, one frame per env step (unit positions, health
and deaths from the SMAX state; JaxMARL's own `SMAXVisualizer` re-simulates 8 sub-steps per step un-jitted and
took over 10 minutes for one 2s3z episode here).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rllib_mag.checkpoints import MODULE_DIR, CheckpointError

def wilson_interval(wins: int, episodes: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a win rate (sensible at 0 and 1 wins, unlike the normal approximation)."""
    if episodes == 0:
        return 0.0, 1.0
    rate = wins / episodes
    centre = (rate + z * z / (2 * episodes)) / (1 + z * z / episodes)
    half = z * math.sqrt(rate * (1 - rate) / episodes + z * z / (4 * episodes ** 2)) / (1 + z * z / episodes)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EvaluationResult:
    """Per-episode outcomes of a greedy evaluation."""

    returns: list[float] = field(default_factory=list)
    wins: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def win_rate(self) -> float:
        return float(np.mean(self.wins)) if self.wins else float("nan")

    def report(self) -> str:
        low, high = wilson_interval(sum(self.wins), len(self.wins))
        return (f"{len(self.wins)} greedy episodes: win rate {self.win_rate:.2f} (95% CI {low:.2f}-{high:.2f}), "
                f"return {np.mean(self.returns):.2f} +- {np.std(self.returns):.2f}, "
                f"length {np.mean(self.lengths):.1f} steps")


@dataclass(frozen=True)
class TrainedPolicy:
    """A checkpoint's module and the env it was trained on."""

    module: Any
    env: str
    env_config: dict[str, Any]


def load_policy(checkpoint: str | Path) -> TrainedPolicy:
    """The learner module and env settings of an algorithm checkpoint (`algo.save_to_path`, Tune's
    `checkpoint_*` folders)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(checkpoint).expanduser().resolve()
    args_file, module_dir = path / "class_and_ctor_args.pkl", path / MODULE_DIR
    if not args_file.is_file():
        raise CheckpointError(f"{path} is not an algorithm checkpoint (no class_and_ctor_args.pkl): pass a "
                              "checkpoint_NNNNNN folder of a trial, or the path given to algo.save_to_path")
    try:
        config = pickle.loads(args_file.read_bytes())["ctor_args_and_kwargs"][0][0]
    except (pickle.UnpicklingError, EOFError, KeyError, IndexError, TypeError) as err:
        raise CheckpointError(f"{args_file} is unreadable ({type(err).__name__}: {err}): the checkpoint is truncated "
                              "or was not written by algo.save_to_path") from err
    if not module_dir.is_dir():
        raise CheckpointError(f"{path} has no {MODULE_DIR}: rllib evaluate reads single-module MAG checkpoints "
                              "(team-view envs such as smax_team)")
    env = config.get("env") if isinstance(config, dict) else None
    if not isinstance(env, str) or not env.endswith("_team"):
        raise CheckpointError(f"{path} was trained on env {env!r}: rllib evaluate plays team-view envs "
                              "(smax_team, smac_team, pettingzoo_team)")
    try:
        module = RLModule.from_checkpoint(module_dir)
    except (pickle.UnpicklingError, EOFError, FileNotFoundError) as err:
        raise CheckpointError(f"the policy in {module_dir} is unreadable ({type(err).__name__}: {err}): the "
                              "checkpoint is truncated") from err
    module.eval()
    return TrainedPolicy(module, env, dict(config.get("env_config") or {}))


def _batch(obs: dict[str, np.ndarray], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One env step as the module's input: batch and time axes of length 1."""
    from ray.rllib.core.columns import Columns

    return {Columns.OBS: {key: torch.as_tensor(value, dtype=torch.float32)[None, None] for key, value in obs.items()},
            Columns.STATE_IN: {key: value[None] for key, value in state.items()}}


def play_episode(module: Any, env: Any, seed: int, frames: list | None = None) -> tuple[float, bool, int]:
    """One greedy episode; returns (return, won, length). With `frames` (SMAX only), appends the units'
    `(positions [U, 2], health fraction [U], alive [U])` before every step and after the last."""
    from ray.rllib.core.columns import Columns

    obs, _ = env.reset(seed=seed)
    state = module.get_initial_state()
    total, length = 0.0, 0
    while True:
        if frames is not None:
            frames.append(_units(env))
        with torch.no_grad():
            out = module.forward_inference(_batch(obs, state))
        actions = out[Columns.ACTIONS][0, 0].numpy()
        state = {key: value[0] for key, value in out[Columns.STATE_OUT].items()}
        obs, reward, terminated, truncated, info = env.step(actions)
        total, length = total + reward, length + 1
        if terminated or truncated:
            if frames is not None:
                frames.append(_units(env))
            return total, bool(info.get("battle_won", False)), length


def _units(env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    smax = env.backend.core.env
    units = env.backend.snapshot().state.state
    max_health = np.asarray(smax.unit_type_health)[np.asarray(units.unit_types)]
    return (np.asarray(units.unit_positions), np.asarray(units.unit_health) / max_health,
            np.asarray(units.unit_alive, dtype=bool))


def evaluate(policy: TrainedPolicy, episodes: int, seed: int = 0, map_name: str | None = None,
             render: str | Path | None = None) -> EvaluationResult:
    """Play `episodes` greedy episodes (env and torch seeds `seed`, `seed + 1`, ...: the same seed gives the same
    episodes); with `render`, the first one is also written as an animated GIF (SMAX only)."""
    from rllib_mag.envs import env_creator

    if episodes < 1:
        raise ValueError(f"episodes={episodes} is invalid: must be >= 1")
    env_config = {**policy.env_config, **({"map_name": map_name} if map_name else {})}
    if render is not None and not policy.env.startswith("smax"):
        raise ValueError(f"--render draws SMAX episodes; this checkpoint plays {policy.env!r}")
    env = env_creator(policy.env)(env_config)
    result = EvaluationResult()
    try:
        for episode in range(episodes):
            frames = [] if render is not None and episode == 0 else None
            with torch.random.fork_rng():  # the filter samples latents: seeded per episode, caller's RNG untouched
                torch.manual_seed(seed + episode)
                total, won, length = play_episode(policy.module, env, seed + episode, frames)
            result.returns.append(total)
            result.wins.append(won)
            result.lengths.append(length)
            if frames is not None:
                write_gif(frames, env.backend.core.env, Path(render), f"{env_config.get('map_name')}, seed "
                          f"{seed}: {'won' if won else 'lost'}, return {total:.1f}")
    finally:
        env.close()
    return result


def write_gif(frames: list, smax_env: Any, path: Path, title: str, fps: int = 8) -> None:
    """Animate recorded unit frames: allies blue, enemies red, opacity by health, dead units as grey crosses,
    zoomed on the square that holds every unit's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    n_allies = smax_env.num_allies
    colours = np.array(["tab:blue"] * n_allies + ["tab:red"] * (len(frames[0][0]) - n_allies))
    fig, ax = plt.subplots(figsize=(4, 4))
    every_position = np.concatenate([positions for positions, _, _ in frames])
    centre = (every_position.min(0) + every_position.max(0)) / 2  # zoom on the fight, square, 2 units of margin
    half = (every_position.max(0) - every_position.min(0)).max() / 2 + 2.0
    ax.set(xlim=(centre[0] - half, centre[0] + half), ylim=(centre[1] - half, centre[1] + half), xticks=[],
           yticks=[])
    ax.set_aspect("equal")
    living = ax.scatter([], [], s=120)
    dead = ax.scatter([], [], marker="x", c="grey", s=60)
    caption = ax.set_title("", fontsize=9)

    def draw(index: int) -> tuple:
        positions, health, alive = frames[index]
        living.set_offsets(positions[alive])
        living.set_color([matplotlib.colors.to_rgba(c, 0.25 + 0.75 * h) for c, h in zip(colours[alive],
                                                                                        health[alive])])
        dead.set_offsets(positions[~alive] if (~alive).any() else np.empty((0, 2)))
        caption.set_text(f"{title}\nstep {index}/{len(frames) - 1}")
        return living, dead, caption

    path.parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=len(frames), blit=False).save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
