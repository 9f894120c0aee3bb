"""RLlib glue of MAG: config, algorithm, learner, RL module, catalog, rollout actors and replay buffers."""

from rllib_mag.algorithm.config import MAGConfig
from rllib_mag.algorithm.mag import MAG

__all__ = ["MAG", "MAGConfig"]
