"""Driver-side check of an `env_config` for this package's envs (map name, option names and values), so that a
typo fails before Ray starts instead of inside a remote env runner. Imports no JAX and no StarCraft II."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from rllib_mag.envs.base import BACKENDS

#: The maps of SMAC 1 (`smac.env.starcraft2.maps.smac_maps`), so a map typo is told apart from a missing install.
SMAC_MAP_NAMES = (
    "3m", "8m", "25m", "5m_vs_6m", "8m_vs_9m", "10m_vs_11m", "27m_vs_30m", "MMM", "MMM2", "2s3z", "3s5z",
    "3s5z_vs_3s6z", "3s_vs_3z", "3s_vs_4z", "3s_vs_5z", "1c3s5z", "2m_vs_1z", "corridor", "6h_vs_8z", "2s_vs_1sc",
    "so_many_baneling", "bane_vs_bane", "2c_vs_64zg",
)
#: Options of the views (`TeamView`) and the ones RLlib adds (`num_envs` with `vector_entry_point`).
VIEW_OPTIONS = ("invalid_actions", "num_envs", "backend")
#: Options that are counts: positive ints.
POSITIVE_INT_OPTIONS = ("episode_limit", "max_cycles", "N")


def closest_hint(name: str, valid: list[str]) -> str:
    """`"did you mean 'x'? "` for the closest of `valid`, or `""`."""
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}? " if match else ""


def _backend_parameters(backend: str) -> dict[str, inspect.Parameter]:
    module, cls_name = BACKENDS[backend]
    cls = getattr(importlib.import_module(module), cls_name)
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def check_backend_config(backend: str, env_config: Mapping[str, Any]) -> None:
    """Raise `ValueError` naming the `env_config` key, its value and the fix, for env `<backend>[_team]`."""
    from rllib_mag.envs.team import INVALID_ACTION_MODES

    options = dict(env_config)
    if options.get("backend", backend) != backend:
        raise ValueError(f"env_config backend={options['backend']!r} is invalid: this env always uses the "
                         f"{backend!r} backend; drop 'backend'")
    invalid = options.get("invalid_actions", "raise")
    if invalid not in INVALID_ACTION_MODES:
        raise ValueError(f"env_config invalid_actions={invalid!r} is invalid: must be one of {INVALID_ACTION_MODES}")
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"env_config seed={seed!r} is invalid: must be an int, or null for a random seed")
    for key in POSITIVE_INT_OPTIONS:
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"env_config {key}={value!r} is invalid: must be an int >= 1")
    params = _backend_parameters(backend)
    map_name = options.get("map_name", params["map_name"].default)
    backend_options = {k: v for k, v in options.items() if k not in VIEW_OPTIONS}
    if backend == "smax":
        from rllib_mag.envs.smax import smax_options

        _check_keys(backend_options, list(params), backend)
        smax_options(map_name, *(backend_options.get(k, params[k].default) for k in (
            "episode_limit", "enemy_shoots", "attack_mode", "walls_cause_death")))
    elif backend == "pettingzoo":
        from rllib_mag.envs.base import resolve_map
        from rllib_mag.envs.pettingzoo import PETTINGZOO_MAPS

        module, defaults = resolve_map(map_name, PETTINGZOO_MAPS, "pettingzoo")
        env_kwargs = inspect.signature(importlib.import_module(module).raw_env).parameters  # parallel_env: **kwargs
        _check_keys(backend_options, [*params, *defaults, *env_kwargs], backend)
    elif map_name not in SMAC_MAP_NAMES:  # smac: its own options are checked against StarCraft2Env at build
        hint = closest_hint(map_name, list(SMAC_MAP_NAMES))
        raise ValueError(f"env_config map_name={map_name!r} is not a SMAC map: {hint}SMAC's maps: "
                         f"{', '.join(SMAC_MAP_NAMES)}")


def _check_keys(options: Mapping[str, Any], allowed: list[str], backend: str) -> None:
    """Every option must be a backend parameter (the backend's own `env` object and `**env_kwargs` are not
    YAML keys)."""
    valid = sorted({*allowed, "invalid_actions"} - {"env", "env_kwargs", "continuous_actions", "render_mode"})
    for key in options:
        if key not in valid:
            raise ValueError(f"unknown env_config key {key!r} for the {backend} backend; {closest_hint(key, valid)}"
                             f"valid keys: {', '.join(valid)}")
