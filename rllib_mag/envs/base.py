"""StarCraft-style backend protocol (docs/contracts.md §1), shared checks and map lookup.

Every backend (SMAX, real SMAC, PettingZoo) mirrors SMAC's ``StarCraft2Env`` so the same
views (:mod:`rllib_mag.envs.team`, :mod:`rllib_mag.envs.multi_agent`) sit on top of any of them.
Getters return numpy arrays; an ``[N, D]`` array indexes exactly like SMAC's list of ``N`` rows.
"""

from __future__ import annotations

import abc
import importlib
import inspect
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

T = TypeVar("T")

#: Backend name -> (module, class); imported lazily so that e.g. JAX loads only for SMAX.
BACKENDS: dict[str, tuple[str, str]] = {
    "smax": ("rllib_mag.envs.smax", "SMAXBackend"),
    "smac": ("rllib_mag.envs.smac", "SMACBackend"),
    "pettingzoo": ("rllib_mag.envs.pettingzoo", "PettingZooBackend"),
}


@runtime_checkable
class StarCraftBackend(Protocol):
    """What the env views need from a backend; mirrors SMAC's ``StarCraft2Env``.

    ``step`` returns SMAC's ``(reward, terminated, info)``: ``terminated`` is True on *any*
    episode end; ``info["episode_limit"]`` marks time-outs and ``info["battle_won"]`` wins.
    """

    map_name: str
    battle_won: bool

    @property
    def agent_ids(self) -> list[str]: ...

    def reset(self) -> tuple[np.ndarray, np.ndarray]: ...

    def step(self, actions: Sequence[int], check_mask: bool = True) -> tuple[float, bool, dict[str, Any]]: ...

    def get_obs(self) -> np.ndarray: ...

    def get_state(self) -> np.ndarray: ...

    def get_avail_actions(self) -> np.ndarray: ...

    def get_alive(self) -> np.ndarray: ...

    def get_env_info(self) -> dict[str, int]: ...

    def seed(self, seed: int | None = None) -> int | None: ...

    def close(self) -> None: ...


@runtime_checkable
class RestorableBackend(Protocol):
    """A backend whose simulator state can be kept and returned to (SMAX; SC2 cannot): ``restore(snapshot())``
    makes the same actions replay the same future."""

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


class BackendBase(abc.ABC):
    """Lifecycle and input checks shared by all backends.

    Subclasses implement the underscore methods; the public methods add the checks:
    no call after :meth:`close` (``RuntimeError``), no getter before the first :meth:`reset`,
    no :meth:`step` after the episode ended, and actions validated by :func:`check_actions`.
    """

    def __init__(self, map_name: str) -> None:
        self.map_name = map_name
        self.battle_won = False
        self._closed = False
        self._has_reset = False
        self._running = False

    # -- subclass hooks -------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def agent_ids(self) -> list[str]:
        """Fixed, ordered agent names (index i = agent i)."""

    @abc.abstractmethod
    def get_env_info(self) -> dict[str, int]:
        """``n_agents, n_enemies, obs_shape, state_shape, n_actions, episode_limit``."""

    @abc.abstractmethod
    def seed(self, seed: int | None = None) -> int | None:
        """Set the seed used from the next :meth:`reset` on; returns the seed in use."""

    @abc.abstractmethod
    def _reset(self) -> None: ...

    @abc.abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]: ...

    @abc.abstractmethod
    def _get_obs(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _get_state(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _get_avail_actions(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _get_alive(self) -> np.ndarray: ...

    def _close(self) -> None:
        """Release resources (default: nothing)."""

    # -- public API -----------------------------------------------------------------------
    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Start an episode; returns ``(obs [N, D], state [S])`` like SMAC."""
        self._require_open("reset")
        self._reset()
        self._has_reset = self._running = True
        self.battle_won = False
        return self._get_obs(), self._get_state()

    def step(self, actions: Sequence[int], check_mask: bool = True) -> tuple[float, bool, dict[str, Any]]:
        """Apply one joint action; returns SMAC's ``(reward, terminated, info)``.

        ``check_mask=False`` passes actions the mask forbids to the simulator, which handles them its own way (SMAX:
        no effect on the dynamics); used to replay imagined actions. Out-of-range actions always raise.
        """
        self._require_ready("step")
        if not self._running:
            raise RuntimeError(f"{type(self).__name__}.step() after the episode ended; call reset() first")
        avail = self._get_avail_actions()
        checked = check_actions(actions, avail if check_mask else np.ones_like(avail), self.agent_ids)
        reward, terminated, info = self._step(checked)
        if terminated:
            self._running = False
            self.battle_won = bool(info.get("battle_won", False))
        return reward, terminated, info

    def get_obs(self) -> np.ndarray:
        """Per-agent observations ``[N, D]`` (zeros for dead agents)."""
        self._require_ready("get_obs")
        return self._get_obs()

    def get_state(self) -> np.ndarray:
        """Global state ``[S]``."""
        self._require_ready("get_state")
        return self._get_state()

    def get_avail_actions(self) -> np.ndarray:
        """Action masks ``[N, A]`` of 0/1 ints."""
        self._require_ready("get_avail_actions")
        return self._get_avail_actions()

    def get_alive(self) -> np.ndarray:
        """``[N]`` bool: which agents are alive (an extension of SMAC's API)."""
        self._require_ready("get_alive")
        return self._get_alive()

    def close(self) -> None:
        """Release the backend; later calls raise ``RuntimeError``. Idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _require_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}.{what}() called after close()")

    def _require_ready(self, what: str) -> None:
        self._require_open(what)
        if not self._has_reset:
            raise RuntimeError(f"{type(self).__name__}.{what}() called before reset()")


def check_actions(actions: Sequence[int] | np.ndarray, avail: np.ndarray, agent_ids: Sequence[str]) -> np.ndarray:
    """Validate a joint action against the masks; returns it as an int64 array.

    Raises ``ValueError`` for a wrong shape, non-integers, out-of-range or masked actions,
    naming the agent, its action and the allowed set.
    """
    n_agents, n_actions = avail.shape
    arr = np.asarray(actions)
    if arr.shape != (n_agents,):
        raise ValueError(f"expected {n_agents} actions (one per agent {list(agent_ids)}), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"actions must be integers, got {arr.tolist()!r}")
    arr = arr.astype(np.int64)
    out_of_range = np.flatnonzero((arr < 0) | (arr >= n_actions))
    if out_of_range.size:
        i = out_of_range[0]
        raise ValueError(f"agent {agent_ids[i]!r}: action {arr[i]} out of range [0, {n_actions})")
    masked = np.flatnonzero(avail[np.arange(n_agents), arr] == 0)
    if masked.size:
        i = masked[0]
        allowed = np.flatnonzero(avail[i]).tolist()
        raise ValueError(f"agent {agent_ids[i]!r}: action {arr[i]} is not available; allowed actions: {allowed}")
    return arr


def replace_invalid_actions(actions: Any, avail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace out-of-range or masked actions by each agent's first allowed action.

    Works on any batch shape: ``actions [..., N]``, ``avail [..., N, A]``. Returns
    ``(actions, valid)`` where ``valid`` marks the entries that were kept.
    """
    arr = np.asarray(actions)
    if arr.shape != avail.shape[:-1]:
        raise ValueError(f"expected actions of shape {avail.shape[:-1]}, got {arr.shape}")
    if arr.dtype.kind not in "iu" and (arr.dtype.kind != "f" or not np.all(np.mod(arr, 1) == 0)):
        raise ValueError(f"actions must be integers (a replaced action is still a discrete choice), got "
                         f"{arr.tolist()!r}")
    arr = arr.astype(np.int64)
    n_actions = avail.shape[-1]
    picked = np.take_along_axis(avail, np.clip(arr, 0, n_actions - 1)[..., None], axis=-1)[..., 0]
    valid = (arr >= 0) & (arr < n_actions) & (picked > 0)
    return np.where(valid, arr, avail.argmax(axis=-1)), valid


def resolve_map(map_name: str, maps: Mapping[str, T], backend: str) -> T:
    """Look a map up, or raise ``ValueError("unknown map 'X'; available: ...")``."""
    try:
        return maps[map_name]
    except KeyError:
        raise ValueError(f"unknown map {map_name!r} for the {backend} backend; available: {', '.join(sorted(maps))}") from None


def check_options(options: Mapping[str, Any], allowed: Collection[str], where: str) -> None:
    """Raise ``ValueError`` naming every option in ``options`` that is not in ``allowed``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {where}; allowed: {sorted(allowed)}")


def make_backend(config: Mapping[str, Any]) -> StarCraftBackend:
    """Build a backend from ``{"backend": "smax"|"smac"|"pettingzoo", "map_name": ..., **options}``."""
    options = dict(config)
    name = options.pop("backend", "smax")
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    module, cls_name = BACKENDS[name]
    cls = getattr(importlib.import_module(module), cls_name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        check_options(options, [p for p in params if p != "self"], f"the {name} backend")
    return cls(**options)
