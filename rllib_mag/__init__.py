"""rllib-mag: MAG ("Models as Agents", AAAI 2023) for Ray RLlib.

Importing the package registers its environments (`smax`, `smac`, `pettingzoo` and their `*_team` views)
and algorithms (`MAG`, `MaskedPPO`) with Ray Tune, so YAML files can name them. Tune's registry lives in
the Ray cluster, so after `ray.shutdown()` call `register()` again before the next `ray.init()`.
"""

from ray.tune.registry import register_trainable

from rllib_mag.algorithm import MAG, MAGConfig
from rllib_mag.baselines import MaskedPPO, MaskedPPOConfig
from rllib_mag.envs import register_envs

__version__ = "0.1.0"

#: Algorithms this package adds, by the name YAML files use in `run:`.
ALGORITHMS = {"MAG": MAG, "MaskedPPO": MaskedPPO}


def register() -> None:
    """Register the environments and algorithms with Ray Tune (idempotent)."""
    register_envs()
    for name, algorithm in ALGORITHMS.items():
        register_trainable(name, algorithm)


register()

__all__ = ["ALGORITHMS", "MAG", "MAGConfig", "MaskedPPO", "MaskedPPOConfig", "register", "register_envs"]
