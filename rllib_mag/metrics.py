"""Episode metrics shared by every algorithm in the package (MAG and the PPO baseline)."""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode


def episode_battle_won(episode: Any) -> float:
    """1.0 if the episode's final info says `battle_won` (SMAC's flag), else 0.0.

    Works for single-agent episodes (MAG's team view) and multi-agent episodes (one info per agent,
    all carrying the same team flag).
    """
    if isinstance(episode, MultiAgentEpisode):
        final_infos = episode.get_infos(-1)
        return float(any(info.get("battle_won", False) for info in final_infos.values()))
    return float(episode.get_infos(-1).get("battle_won", False))


class WinRateCallback(RLlibCallback):
    """Logs `env_runners/win_rate`: the fraction of won episodes among those that ended in the iteration.

    Like RLlib 2.60's own `episode_return_mean`, it covers the episodes finished since the last result, so
    collect several episodes per iteration (MAG's `episodes_per_iteration`) for a less noisy curve.
    """

    def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        if metrics_logger is not None:
            metrics_logger.log_value("win_rate", episode_battle_won(episode), reduce="mean")
