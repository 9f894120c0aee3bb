"""StarCraft-style environments for rllib-mag.

Backends (SMAC's ``StarCraft2Env`` API, see :mod:`rllib_mag.envs.base`):
``SMAXBackend`` (JaxMARL, default), ``SMACBackend`` (real SC2), ``PettingZooBackend``.
Views over any backend: ``StarCraftMultiAgentEnv`` (RLlib per-agent) and ``TeamEnv``
(single-agent team view, docs/contracts.md §2); ``SMAXTeamVectorEnv`` vectorizes SMAX.

Nothing heavy is imported here: JAX, SMAC, PettingZoo and Ray load on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Callable

from rllib_mag.envs.base import BackendBase, StarCraftBackend, check_actions, make_backend

#: RLlib env name -> (view, backend). ``<backend>`` is per-agent, ``<backend>_team`` the team view.
ENV_NAMES: dict[str, tuple[str, str]] = {
    name: (view, backend)
    for backend in ("smax", "smac", "pettingzoo")
    for name, view in ((backend, "multi_agent"), (f"{backend}_team", "team"))
}

_LAZY = {
    "TeamEnv": "rllib_mag.envs.team",
    "TeamView": "rllib_mag.envs.team",
    "StarCraftMultiAgentEnv": "rllib_mag.envs.multi_agent",
    "shared_policy_mapping": "rllib_mag.envs.multi_agent",
    "SMAXBackend": "rllib_mag.envs.smax",
    "SMAXTeamVectorEnv": "rllib_mag.envs.smax_vector",
    "SMACBackend": "rllib_mag.envs.smac",
    "PettingZooBackend": "rllib_mag.envs.pettingzoo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def env_creator(name: str) -> Callable[[dict[str, Any]], Any]:
    """The creator registered for RLlib env ``name`` (see :data:`ENV_NAMES`).

    ``env_config`` holds ``map_name`` plus backend options. For ``smax_team``, a ``num_envs``
    key (added by RLlib with ``gym_env_vectorize_mode="vector_entry_point"``) returns the
    vectorized :class:`SMAXTeamVectorEnv` instead of one env.
    """
    if name not in ENV_NAMES:
        raise ValueError(f"unknown env {name!r}; available: {', '.join(sorted(ENV_NAMES))}")
    view, backend = ENV_NAMES[name]

    def create(env_config: dict[str, Any]) -> Any:
        config = dict(env_config)
        if "backend" in config and config.pop("backend") != backend:
            raise ValueError(f"env {name!r} always uses the {backend!r} backend; drop 'backend' from env_config")
        num_envs = config.pop("num_envs", None)
        if num_envs is not None:
            if name != "smax_team":
                raise ValueError(f"env {name!r} has no vectorized version; use gym_env_vectorize_mode='sync' "
                                 "(only 'smax_team' supports 'vector_entry_point')")
            from rllib_mag.envs.smax_vector import SMAXTeamVectorEnv

            return SMAXTeamVectorEnv(num_envs=num_envs, **config)
        if view == "team":
            from rllib_mag.envs.team import TeamEnv

            return TeamEnv({**config, "backend": backend})
        from rllib_mag.envs.multi_agent import StarCraftMultiAgentEnv

        return StarCraftMultiAgentEnv({**config, "backend": backend})

    create.__name__ = f"create_{name}"
    return create


def check_env(env: Any, env_config: Mapping[str, Any]) -> None:
    """Validate an algorithm's env on the driver, before an env runner builds it: this package's names are
    registered with Tune (`ensure_registered`) and their `env_config` checked (map, option names and values); any
    other name must be registered with Tune or gymnasium, or be a dotted path. Raises `ValueError`."""
    ensure_registered(env)
    if isinstance(env, str) and env in ENV_NAMES:
        from rllib_mag.envs.env_config import check_backend_config

        check_backend_config(ENV_NAMES[env][1], env_config)
        return
    if not isinstance(env, str) or "." in env:
        return
    import gymnasium
    from ray.tune.registry import ENV_CREATOR, _global_registry

    if not (_global_registry.contains(ENV_CREATOR, env) or env in gymnasium.registry):
        from rllib_mag.envs.env_config import closest_hint

        raise ValueError(f"unknown env {env!r}: {closest_hint(env, sorted(ENV_NAMES))}rllib-mag provides "
                         f"{sorted(ENV_NAMES)}; register your own with ray.tune.registry.register_env")


def register_envs() -> None:
    """Register every name in :data:`ENV_NAMES` with ``ray.tune.registry.register_env``."""
    from ray.tune.registry import register_env

    for name in ENV_NAMES:
        register_env(name, env_creator(name))


def ensure_registered(env: Any) -> None:
    """Register this package's envs with Tune when ``env`` names one of them and Tune does not know it yet, so
    that a config validated in a fresh process (``Algorithm.from_checkpoint``, a Tune trial) finds its env
    without a prior ``rllib_mag.register()``."""
    if isinstance(env, str) and env in ENV_NAMES:
        from ray.tune.registry import ENV_CREATOR, _global_registry

        if not _global_registry.contains(ENV_CREATOR, env):
            register_envs()


__all__ = [
    "ENV_NAMES",
    "BackendBase",
    "StarCraftBackend",
    "check_actions",
    "check_env",
    "ensure_registered",
    "env_creator",
    "make_backend",
    "register_envs",
    *_LAZY,
]
