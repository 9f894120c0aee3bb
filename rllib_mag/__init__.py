"""rllib-mag: MAG ("Models as Agents", AAAI 2023) for Ray RLlib.

Importing the package imports no Ray: the torch core (`rllib_mag.models`, `planning`, `learning`) runs without
it, and `MAG`, `MAGConfig`, `MaskedPPO`, `MaskedPPOConfig` load on first use. Registration with Ray Tune is
explicit: `rllib_mag.register()` adds the environments (`smax`, `smac`, `pettingzoo` and their `*_team` views)
and the algorithms (`MAG`, `MaskedPPO`) under the names YAML files and `.environment("smax_team")` use; the
`rllib` command does it for you. Tune's registry lives in the Ray cluster, so after `ray.shutdown()` call
`register()` again before the next `ray.init()`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public names loaded on first access (they import Ray), by the module that defines them.
_LAZY = {"MAG": "rllib_mag.algorithm", "MAGConfig": "rllib_mag.algorithm", "MaskedPPO": "rllib_mag.baselines",
         "MaskedPPOConfig": "rllib_mag.baselines", "register_envs": "rllib_mag.envs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rllib_mag' has no attribute {name!r}")


def algorithms() -> dict[str, type]:
    """The algorithms this package adds, by the name YAML files use in `run:`."""
    from rllib_mag.algorithm import MAG
    from rllib_mag.baselines import MaskedPPO

    return {"MAG": MAG, "MaskedPPO": MaskedPPO}


def register() -> None:
    """Register the environments and algorithms with Ray Tune (idempotent)."""
    from ray.tune.registry import register_trainable

    from rllib_mag.envs import register_envs

    register_envs()
    for name, algorithm in algorithms().items():
        register_trainable(name, algorithm)


__all__ = ["MAG", "MAGConfig", "MaskedPPO", "MaskedPPOConfig", "algorithms", "register", "register_envs"]
