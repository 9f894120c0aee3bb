"""rllib-mag: MAG ("Models as Agents", AAAI 2023) for Ray RLlib.

Importing the package registers its environments (`smax`, `smac`, `pettingzoo` and their `*_team` views)
and algorithms (`MAG`, `MaskedPPO`) with Ray Tune, so YAML files can name them.
"""

from ray.tune.registry import register_trainable

from rllib_mag.algorithm import MAG, MAGConfig
from rllib_mag.baselines import MaskedPPO, MaskedPPOConfig
from rllib_mag.envs import register_envs

__version__ = "0.1.0"

register_envs()
register_trainable("MAG", MAG)
register_trainable("MaskedPPO", MaskedPPO)

__all__ = ["MAG", "MAGConfig", "MaskedPPO", "MaskedPPOConfig", "register_envs"]
