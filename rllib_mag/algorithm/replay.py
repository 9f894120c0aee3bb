"""Replay buffers of Algorithm 1: D_e (real sequences, line 3) and D_m (synthetic rollouts, line 13).

D_e stores complete episodes of the team env as rows in the DreamerV3 convention of `docs/contracts.md` §3
(an episode of n steps gives n + 1 rows) in preallocated numpy ring storage, and samples B windows of T rows.
D_m keeps the most recent synthetic transitions (a FIFO bounded in joint transitions) for PPO.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch

from rllib_mag.planning.imagination import SyntheticBatch

class SequenceReplayBuffer:
    """D_e: a ring buffer of team-env rows, sampled as [T, B, ...] windows (contracts §3)."""

    def __init__(self, capacity: int, n_agents: int, obs_dim: int, n_actions: int) -> None:
        if capacity < 2:
            raise ValueError(f"replay capacity must be at least 2 rows, got {capacity}")
        self.capacity = capacity
        self._rows = {
            "obs": np.zeros((capacity, n_agents, obs_dim), np.float32),
            "action_mask": np.zeros((capacity, n_agents, n_actions), np.float32),
            "alive": np.zeros((capacity, n_agents), np.float32),
            "action": np.zeros((capacity, n_agents), np.int64),
            "reward": np.zeros(capacity, np.float32),
            "is_first": np.zeros(capacity, np.float32),
            "is_last": np.zeros(capacity, np.float32),
            "is_terminal": np.zeros(capacity, np.float32),
        }
        self._next = 0  # write position
        self._size = 0
        self.num_env_steps_added = 0

    def __len__(self) -> int:
        return self._size

    def add_episode(self, observations: dict[str, np.ndarray], actions: np.ndarray, rewards: np.ndarray,
                    terminated: bool) -> None:
        """Append one complete episode: `observations[key]` is [n+1, ...], `actions` [n, N], `rewards` [n]."""
        n = len(actions)
        if len(rewards) != n or len(observations["obs"]) != n + 1:
            raise ValueError(f"episode needs n+1 observations for n actions and rewards; got "
                             f"{len(observations['obs'])} observations, {n} actions, {len(rewards)} rewards")
        if n + 1 > self.capacity:
            raise ValueError(f"an episode of {n + 1} rows does not fit a replay buffer of {self.capacity} rows")
        rows = {
            "obs": observations["obs"],
            "action_mask": observations["action_mask"],
            "alive": observations["alive"],
            "action": np.concatenate([actions, np.zeros_like(actions[:1])]),
            "reward": np.concatenate([[0.0], rewards]),
            "is_first": np.eye(1, n + 1, 0)[0],
            "is_last": np.eye(1, n + 1, n)[0],
            "is_terminal": np.eye(1, n + 1, n)[0] * float(terminated),
        }
        index = (self._next + np.arange(n + 1)) % self.capacity
        for key, value in rows.items():
            self._rows[key][index] = value
        self._next = int((self._next + n + 1) % self.capacity)
        self._size = min(self._size + n + 1, self.capacity)
        self.num_env_steps_added += n

    def sample(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """B windows of T consecutive rows, time-major: each value is [T, B, ...].

        A window never crosses the write position (where the oldest, possibly half-overwritten, episode
        begins); it may cross episode boundaries, which `is_first` marks for the recurrent state.
        """
        if self._size < length:
            raise ValueError(f"cannot sample windows of {length} rows from {self._size} stored rows")
        oldest = (self._next - self._size) % self.capacity
        starts = oldest + rng.integers(0, self._size - length + 1, size=batch_size)
        index = (starts[None, :] + np.arange(length)[:, None]) % self.capacity
        batch = {key: value[index] for key, value in self._rows.items()}
        batch["is_first"][0] = 1.0  # every window starts from a fresh recurrent state
        return batch

    def get_state(self) -> dict[str, Any]:
        order = (self._next - self._size + np.arange(self._size)) % self.capacity
        return {"rows": {key: value[order] for key, value in self._rows.items()},
                "num_env_steps_added": self.num_env_steps_added}

    def set_state(self, state: dict[str, Any]) -> None:
        rows = state["rows"]
        size = min(len(rows["reward"]), self.capacity)
        for key, value in rows.items():
            self._rows[key][:size] = value[len(value) - size:]
        self._size, self._next = size, size % self.capacity
        self.num_env_steps_added = state["num_env_steps_added"]


class EpisodeAssembler:
    """Joins the episode chunks env runners return (an episode may span several `sample()` calls, one
    chunk each) into complete episodes for D_e. A continuation chunk starts at the observation the previous
    chunk ended on.

    Chunks are keyed by the env runner that sent them (`source`): when a runner fails or restarts, its unfinished
    episodes are dropped (`drop_source`), and a continuation whose beginning never arrived is dropped too, so
    no partial episode enters D_e. `num_dropped` counts the episodes dropped.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[int, str], dict[str, Any]] = {}
        self.num_dropped = 0

    def add(self, chunk: Any, source: int) -> dict[str, Any] | None:
        """Add one `SingleAgentEpisode` chunk from env runner `source`; return the whole episode once its last
        chunk arrived."""
        previous = self._pending.pop((source, chunk.id_), None)
        if previous is None and chunk.t_started > 0:  # its earlier chunks were dropped with a failed runner
            self.num_dropped += 1
            return None
        observations = chunk.get_observations()
        part = {"observations": observations, "actions": np.asarray(chunk.get_actions()),
                "rewards": np.asarray(chunk.get_rewards(), np.float32)}
        if previous is not None:
            part = {
                "observations": {k: np.concatenate([previous["observations"][k], v[1:]])
                                 for k, v in observations.items()},
                "actions": np.concatenate([previous["actions"], part["actions"]]),
                "rewards": np.concatenate([previous["rewards"], part["rewards"]]),
            }
        if not chunk.is_done:
            self._pending[(source, chunk.id_)] = part
            return None
        return {**part, "terminated": chunk.is_terminated}

    def drop_source(self, source: int) -> None:
        """Forget the unfinished episodes of env runner `source` (it failed, or restarted with fresh episodes)."""
        stale = [key for key in self._pending if key[0] == source]
        for key in stale:
            del self._pending[key]
        self.num_dropped += len(stale)

    @property
    def num_pending(self) -> int:
        return len(self._pending)


class SyntheticReplayBuffer:
    """D_m: the most recent synthetic rollouts, bounded by `capacity` joint transitions (Algorithm 1 line 13).

    The default capacity (M x k) keeps exactly the latest imagination round, which is what the released code
    trains PPO on; a larger capacity lets PPO also replay earlier rounds.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"synthetic buffer capacity must be >= 1 transition, got {capacity}")
        self.capacity = capacity
        self._batches: list[SyntheticBatch] = []

    def __len__(self) -> int:
        return sum(batch.actions.shape[:2].numel() for batch in self._batches)

    def add(self, batch: SyntheticBatch) -> None:
        """Add one rollout `[M, k, ...]`; drop the oldest rollouts beyond capacity (the newest always stays)."""
        self._batches.append(batch)
        while len(self._batches) > 1 and len(self) - self._batches[0].actions.shape[:2].numel() >= self.capacity:
            self._batches.pop(0)

    def all(self) -> SyntheticBatch:
        """Everything stored as one batch."""
        if not self._batches:
            raise ValueError("the synthetic replay buffer is empty")
        return self.concatenate(self._batches)

    @staticmethod
    def concatenate(batches: list[SyntheticBatch]) -> SyntheticBatch:
        """Rollouts joined along M; the per-step planner statistics are averaged."""
        return SyntheticBatch(**{
            f.name: torch.cat([getattr(b, f.name) for b in batches]) if f.name in SyntheticBatch.PER_START
            else torch.stack([getattr(b, f.name) for b in batches]).mean(0)
            for f in fields(SyntheticBatch)})

    def get_state(self) -> dict[str, Any]:
        return {"batches": list(self._batches)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._batches = list(state["batches"])
