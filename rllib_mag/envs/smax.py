"""JaxMARL SMAX backend (the default): SMAC-like maps without StarCraft II.

Differences from SC2/SMAC are documented in ``docs/environments.md``. In short: an open 32x32
arena without terrain; actions ``0-3`` move, ``4`` stop, ``5+j`` attack enemy ``j`` (no no-op;
dead agents may only stop); different obs/state sizes; rewards on SMAX's scale (max ~2 per
episode) unless ``reward_scale_to_smac`` (default on) multiplies them by 10 to match SMAC's 20.

JAX is imported lazily (only when a backend is built). Compiled functions are cached per
scenario (:func:`smax_core`), so several instances and the vector env share one compilation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from rllib_mag.envs.base import BackendBase, resolve_map

if TYPE_CHECKING:
    import jax

#: SMAX unit type indices (JaxMARL's default unit table).
UNIT_TYPES = {"marine": 0, "marauder": 1, "stalker": 2, "zealot": 3, "zergling": 4, "hydralisk": 5}

#: SMAX's won-battle bonus; with normalised damage an episode returns at most ~2.
_WON_BATTLE_BONUS = 1.0
#: SMAC scales an episode's maximal return to ``reward_scale_rate`` = 20.
SMAC_REWARD_SCALE = 20.0 / (1.0 + _WON_BATTLE_BONUS)


@dataclass(frozen=True)
class SMAXMap:
    """A scenario: ally and enemy unit types (by name) and SMAC's episode limit."""

    allies: tuple[str, ...]
    enemies: tuple[str, ...]
    episode_limit: int


def _units(**counts: int) -> tuple[str, ...]:
    return tuple(name for name, n in counts.items() for _ in range(n))


#: Maps available on SMAX. Unit lists mirror SMAC's; limits are SMAC's ``smac_maps.py`` limits.
SMAX_MAPS: dict[str, SMAXMap] = {
    "3m": SMAXMap(_units(marine=3), _units(marine=3), 60),
    "8m": SMAXMap(_units(marine=8), _units(marine=8), 120),
    "25m": SMAXMap(_units(marine=25), _units(marine=25), 150),
    "5m_vs_6m": SMAXMap(_units(marine=5), _units(marine=6), 70),
    "10m_vs_11m": SMAXMap(_units(marine=10), _units(marine=11), 150),
    "27m_vs_30m": SMAXMap(_units(marine=27), _units(marine=30), 180),
    "2s3z": SMAXMap(_units(stalker=2, zealot=3), _units(stalker=2, zealot=3), 120),
    "3s5z": SMAXMap(_units(stalker=3, zealot=5), _units(stalker=3, zealot=5), 150),
    "3s5z_vs_3s6z": SMAXMap(_units(stalker=3, zealot=5), _units(stalker=3, zealot=6), 170),
    "3s_vs_3z": SMAXMap(_units(stalker=3), _units(zealot=3), 150),
    "3s_vs_4z": SMAXMap(_units(stalker=3), _units(zealot=4), 200),
    "3s_vs_5z": SMAXMap(_units(stalker=3), _units(zealot=5), 250),
    "6h_vs_8z": SMAXMap(_units(hydralisk=6), _units(zealot=8), 150),
    # SMAC's corridor is a narrow walled path; SMAX has no terrain, so this is the open field.
    "corridor": SMAXMap(_units(zealot=6), _units(zergling=24), 400),
}

#: SMAC maps deliberately not offered on SMAX, with the reason.
UNSUPPORTED_MAPS: dict[str, str] = {
    "2c_vs_64zg": "SMAX has no colossus (and no cliffs, which this map is about)",
    "2s_vs_1sc": "SMAX has no spine crawler",
}


class SMAXSnapshot(NamedTuple):
    """Everything that decides a :class:`SMAXBackend`'s future: the PRNG key, the SMAX state, the host view of the
    last step and the episode flags. JAX arrays are immutable, so a snapshot shares them without copying."""

    key: Any
    state: Any
    out: Any
    running: bool
    battle_won: bool


class SMAXOptions(NamedTuple):
    """Everything that changes the compiled program (the compile-cache key)."""

    map_name: str
    episode_limit: int
    enemy_shoots: bool = True
    attack_mode: str = "closest"
    walls_cause_death: bool = True


class SMAXOutput(NamedTuple):
    """One env's (or a batch's, with leading axes) host-side view of a reset/step result."""

    obs: np.ndarray  # [..., N, D] float32
    state: np.ndarray  # [..., S] float32
    avail: np.ndarray  # [..., N, A] int8
    alive: np.ndarray  # [..., N] bool
    reward: np.ndarray  # [...] float32 (SMAX scale)
    terminated: np.ndarray  # [...] bool: one side eliminated
    truncated: np.ndarray  # [...] bool: episode limit reached undecided
    won: np.ndarray  # [...] bool: all enemies dead, an ally alive


class SMAXCore:
    """Pure, jitted SMAX functions for one scenario, shared by all instances.

    ``reset(key) -> (key, state, packed)`` and ``step(key, state, actions) -> (key, state, packed)``
    where ``packed`` is one float32 vector holding everything the host needs (a single device->host
    transfer per step); :meth:`unpack` splits it into a :class:`SMAXOutput`. ``vreset`` and
    ``vstep_autoreset`` are vmapped over a leading batch axis; the latter resets copies flagged
    ``needs_reset`` instead of stepping them (gymnasium's NEXT_STEP autoreset).
    """

    def __init__(self, options: SMAXOptions) -> None:
        import jax
        import jax.numpy as jnp
        from jaxmarl.environments.smax import HeuristicEnemySMAX
        from jaxmarl.environments.smax.smax_env import Scenario

        spec = SMAX_MAPS[options.map_name]
        unit_types = jnp.array([UNIT_TYPES[u] for u in spec.allies + spec.enemies], dtype=jnp.uint8)
        self.options = options
        self.env = HeuristicEnemySMAX(
            scenario=Scenario(unit_types, len(spec.allies), len(spec.enemies), False, False),
            # SMAX ends an episode once ``step >= max_steps`` *before* incrementing the step,
            # i.e. after max_steps + 1 steps; we also compute the time-out ourselves below.
            max_steps=options.episode_limit - 1,
            enemy_shoots=options.enemy_shoots,
            attack_mode=options.attack_mode,
            walls_cause_death=options.walls_cause_death,
            won_battle_bonus=_WON_BATTLE_BONUS,
        )
        self.n_agents = n = self.env.num_allies
        self.n_enemies = self.env.num_enemies
        self.n_actions = self.env.num_ally_actions
        self.obs_dim = self.env.obs_size
        self.state_dim = self.env.state_size
        self.episode_limit = limit = options.episode_limit
        agents = self.env.agents
        sizes = [n * self.obs_dim, self.state_dim, n * self.n_actions, n, 1, 1, 1, 1]
        self._splits = np.cumsum(sizes)[:-1]

        def pack(state: Any, obs: dict[str, jax.Array], *flags: jax.Array) -> jax.Array:
            avail = self.env.get_avail_actions(state)
            parts = [jnp.stack([obs[a] for a in agents]), obs["world_state"], jnp.stack([avail[a] for a in agents]),
                     state.state.unit_alive[:n], *flags]
            return jnp.concatenate([jnp.ravel(p).astype(jnp.float32) for p in parts])

        def reset(key: jax.Array) -> tuple[jax.Array, Any, jax.Array]:
            key, sub = jax.random.split(key)
            obs, state = self.env.reset(sub)
            # reset() leaves weakly typed leaves (e.g. last_attacked_enemy=-1) whose types
            # differ from step()'s outputs -> the first step after reset would recompile.
            state = jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), state)
            false = jnp.zeros((), bool)
            return key, state, pack(state, obs, jnp.zeros(()), false, false, false)

        def step(key: jax.Array, state: Any, actions: jax.Array) -> tuple[jax.Array, Any, jax.Array]:
            key, sub = jax.random.split(key)
            obs, state, rewards, _, _ = self.env.step_env(sub, state, {a: actions[i] for i, a in enumerate(agents)})
            alive = state.state.unit_alive
            allies_alive, enemies_alive = alive[:n].any(), alive[n:].any()
            terminated = ~(allies_alive & enemies_alive)
            truncated = (state.state.step >= limit) & ~terminated
            won = allies_alive & ~enemies_alive
            return key, state, pack(state, obs, rewards[agents[0]], terminated, truncated, won)

        def step_autoreset(key: jax.Array, state: Any, actions: jax.Array, needs_reset: jax.Array) -> tuple[Any, ...]:
            return jax.tree.map(lambda r, s: jnp.where(needs_reset, r, s), reset(key), step(key, state, actions))

        self.reset: Callable[..., Any] = jax.jit(reset)
        self.step: Callable[..., Any] = jax.jit(step)
        self.vreset: Callable[..., Any] = jax.jit(jax.vmap(reset))
        self.vstep_autoreset: Callable[..., Any] = jax.jit(jax.vmap(step_autoreset))

    def unpack(self, packed: Any) -> SMAXOutput:
        """Copy ``packed`` ``[..., L]`` to the host and split it (views into one numpy array)."""
        import jax

        host = np.asarray(jax.device_get(packed))
        batch = host.shape[:-1]
        obs, state, avail, alive, reward, terminated, truncated, won = np.split(host, self._splits, axis=-1)
        n, a = self.n_agents, self.n_actions
        return SMAXOutput(
            obs.reshape(*batch, n, self.obs_dim),
            state,
            avail.reshape(*batch, n, a).astype(np.int8),
            alive > 0.5,
            reward[..., 0],
            terminated[..., 0] > 0.5,
            truncated[..., 0] > 0.5,
            won[..., 0] > 0.5,
        )


@functools.lru_cache(maxsize=None)
def smax_core(options: SMAXOptions) -> SMAXCore:
    """The shared :class:`SMAXCore` for ``options`` (built and compiled once per process)."""
    return SMAXCore(options)


def smax_options(
    map_name: str,
    episode_limit: int | None = None,
    enemy_shoots: bool = True,
    attack_mode: str = "closest",
    walls_cause_death: bool = True,
) -> SMAXOptions:
    """Validate a map name and options; raises a clear ``ValueError`` for unsupported maps."""
    if map_name in UNSUPPORTED_MAPS:
        raise ValueError(
            f"map {map_name!r} is not available on SMAX: {UNSUPPORTED_MAPS[map_name]}; its unit stats "
            "would be guesses, so results would not be comparable with SMAC. "
            "Use the real StarCraft II backend instead: env 'smac'/'smac_team' (see docs/environments.md)."
        )
    spec = resolve_map(map_name, SMAX_MAPS, "smax")
    if attack_mode not in ("closest", "random"):
        raise ValueError(f"attack_mode must be 'closest' or 'random', got {attack_mode!r}")
    limit = spec.episode_limit if episode_limit is None else int(episode_limit)
    if limit < 1:
        raise ValueError(f"episode_limit must be >= 1, got {limit}")
    return SMAXOptions(map_name, limit, bool(enemy_shoots), attack_mode, bool(walls_cause_death))


def default_seed(seed: int | None) -> int:
    """``seed`` or, when None, fresh OS entropy (like gymnasium)."""
    return int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)


class SMAXBackend(BackendBase):
    """SMAX (``HeuristicEnemySMAX``) behind the SMAC-style backend protocol.

    Args:
        map_name: a key of :data:`SMAX_MAPS`.
        seed: PRNG seed (None: random). Same seed -> same episodes.
        episode_limit: override SMAC's limit for the map.
        reward_scale_to_smac: multiply rewards by 10 so that a perfect episode returns ~20
            like SMAC (a linear rescale, not SMAC's reward shaping).
        enemy_shoots, attack_mode, walls_cause_death: passed to SMAX.
    """

    def __init__(
        self,
        map_name: str = "3s_vs_5z",
        *,
        seed: int | None = None,
        episode_limit: int | None = None,
        reward_scale_to_smac: bool = True,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
        walls_cause_death: bool = True,
    ) -> None:
        options = smax_options(map_name, episode_limit, enemy_shoots, attack_mode, walls_cause_death)
        super().__init__(map_name)
        self.core = smax_core(options)
        self.reward_scale = SMAC_REWARD_SCALE if reward_scale_to_smac else 1.0
        self._agent_ids = [f"ally_{i}" for i in range(self.core.n_agents)]
        self._key: jax.Array | None = None
        self._state: Any = None
        self._out: SMAXOutput | None = None
        self.seed(seed)

    @property
    def agent_ids(self) -> list[str]:
        return self._agent_ids

    def get_env_info(self) -> dict[str, int]:
        core = self.core
        return {
            "n_agents": core.n_agents,
            "n_enemies": core.n_enemies,
            "obs_shape": core.obs_dim,
            "state_shape": core.state_dim,
            "n_actions": core.n_actions,
            "episode_limit": core.episode_limit,
        }

    def seed(self, seed: int | None = None) -> int:
        import jax

        self._seed = default_seed(seed)
        self._key = jax.random.PRNGKey(self._seed)
        return self._seed

    def _reset(self) -> None:
        self._key, self._state, packed = self.core.reset(self._key)
        self._out = self.core.unpack(packed)

    def _step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        self._key, self._state, packed = self.core.step(self._key, self._state, actions.astype(np.int32))
        out = self._out = self.core.unpack(packed)
        info: dict[str, Any] = {"battle_won": bool(out.won)}
        if out.truncated:
            info["episode_limit"] = True
        return float(out.reward) * self.reward_scale, bool(out.terminated or out.truncated), info

    def _get_obs(self) -> np.ndarray:
        return self._out.obs

    def _get_state(self) -> np.ndarray:
        return self._out.state

    def _get_avail_actions(self) -> np.ndarray:
        return self._out.avail

    def _get_alive(self) -> np.ndarray:
        return self._out.alive

    def snapshot(self) -> SMAXSnapshot:
        """The current simulator state; :meth:`restore` returns to it, so the same actions replay the same future
        (used to measure a world model's true error, :mod:`rllib_mag.analysis.model_error`)."""
        self._require_ready("snapshot")
        return SMAXSnapshot(self._key, self._state, self._out, self._running, self.battle_won)

    def restore(self, snapshot: SMAXSnapshot) -> None:
        """Return to a state taken by :meth:`snapshot` (of a backend on the same map)."""
        self._require_open("restore")
        self._key, self._state, self._out, self._running, self.battle_won = snapshot
        self._has_reset = True

    @property
    def jax_state(self) -> Any:
        """The current SMAX state (``.state.unit_positions`` etc.), for tests and analysis."""
        return self._state
