"""Real StarCraft II through oxwhirl's SMAC (``smac.env.StarCraft2Env``), imported lazily.

Install (not on PyPI: PyPI's ``smac`` is SMAC3, an unrelated optimisation library)::

    pip install git+https://github.com/oxwhirl/smac.git
    # StarCraft II (Linux build) in ~/StarCraftII or $SC2PATH; SMAC_Maps in $SC2PATH/Maps/

Every ``StarCraft2Env`` keyword (``difficulty``, ``reward_*``, ``continuing_episode``, ``seed``,
``obs_*``, ...) is passed through; unknown ones raise ``ValueError``. SMAC reports a time-out with
``terminated=True`` and (unless ``continuing_episode``) no flag, so this backend adds
``info["episode_limit"] = True`` itself when the limit ends an undecided battle.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from rllib_mag.envs.base import BackendBase, check_options, resolve_map

SMAC_INSTALL = "pip install git+https://github.com/oxwhirl/smac.git"


def import_starcraft2env() -> type:
    """``smac.env.StarCraft2Env``, or an ``ImportError`` that says how to fix the install."""
    try:
        smac = importlib.import_module("smac")
    except ImportError:
        raise ImportError(f"SMAC is not installed; install it with: {SMAC_INSTALL}") from None
    try:
        return importlib.import_module("smac.env").StarCraft2Env
    except (ImportError, AttributeError) as err:
        if hasattr(smac, "facade") or _importable("smac.facade"):
            raise ImportError(
                "the installed 'smac' package is SMAC3 (Sequential Model-based Algorithm Configuration, "
                "from PyPI), not the StarCraft Multi-Agent Challenge. Replace it: "
                f"pip uninstall -y smac && {SMAC_INSTALL}"
            ) from None
        raise ImportError(f"cannot import smac.env.StarCraft2Env ({err}); reinstall SMAC: {SMAC_INSTALL}") from None


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def sc2_path() -> Path:
    """``$SC2PATH``, or ``~/StarCraftII`` (pysc2's Linux default)."""
    return Path(os.environ.get("SC2PATH", "~/StarCraftII")).expanduser()


def check_sc2_install(map_name: str) -> Path:
    """Raise ``FileNotFoundError`` unless StarCraft II and the SMAC map file are installed."""
    root = sc2_path()
    if not root.is_dir():
        raise FileNotFoundError(
            f"StarCraft II not found at {root}. Install the Linux build (SMAC's README; the paper used "
            "SC2.4.6.2.69232) to ~/StarCraftII or set SC2PATH to its folder."
        )
    map_file = root / "Maps" / "SMAC_Maps" / f"{map_name}.SC2Map"
    if not map_file.is_file():
        raise FileNotFoundError(
            f"SMAC map {map_file} is missing. Download SMAC_Maps.zip from https://github.com/oxwhirl/smac/releases "
            f"and unzip it into {root / 'Maps'}/ (a pip install of SMAC has no map files)."
        )
    return map_file


class SMACBackend(BackendBase):
    """SMAC's ``StarCraft2Env`` behind the backend protocol (obs/state/actions exactly SMAC's).

    Args:
        map_name: a SMAC map (``corridor``, ``2s3z``, ``3s_vs_5z``, ...).
        **smac_options: ``StarCraft2Env`` keywords, checked against its signature.
    """

    def __init__(self, map_name: str = "3s_vs_5z", **smac_options: Any) -> None:
        env_cls = import_starcraft2env()
        registry = importlib.import_module("smac.env.starcraft2.maps.smac_maps").get_smac_map_registry()
        resolve_map(map_name, registry, "smac")
        allowed = [p for p in inspect.signature(env_cls.__init__).parameters if p not in ("self", "map_name")]
        check_options(smac_options, allowed, "the smac backend (StarCraft2Env)")
        check_sc2_install(map_name)
        super().__init__(map_name)
        self.env = env_cls(map_name=map_name, **smac_options)
        info = self.env.get_env_info()
        self._info = {
            "n_agents": int(info["n_agents"]),
            "n_enemies": int(self.env.n_enemies),
            "obs_shape": int(info["obs_shape"]),
            "state_shape": int(info["state_shape"]),
            "n_actions": int(info["n_actions"]),
            "episode_limit": int(info["episode_limit"]),
        }
        self._agent_ids = [f"agent_{i}" for i in range(self._info["n_agents"])]
        self._arrays: tuple[np.ndarray, ...] = ()
        self._steps = 0

    @property
    def agent_ids(self) -> list[str]:
        return self._agent_ids

    def get_env_info(self) -> dict[str, int]:
        return dict(self._info)

    def seed(self, seed: int | None = None) -> int | None:
        """Set SC2's game seed; SMAC only reads it at launch, so a running game is relaunched."""
        if seed is not None:
            self.env._seed = int(seed)
            if self.env._sc2_proc is not None:
                self.env.full_restart()
        return self.env.seed()

    def _refresh(self) -> None:
        avail = np.asarray(self.env.get_avail_actions(), dtype=np.int8)
        self._arrays = (
            np.asarray(self.env.get_obs(), dtype=np.float32),
            np.asarray(self.env.get_state(), dtype=np.float32),
            avail,
            avail[:, 0] == 0,  # SMAC: the no-op (action 0) is available only to dead agents
        )

    def _reset(self) -> None:
        self.env.reset()
        self._steps = 0
        self._refresh()

    def _step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        reward, terminated, info = self.env.step(actions.tolist())
        self._steps += 1
        self._refresh()
        info = dict(info)
        lost = not self._arrays[3].any()
        if terminated and self._steps >= self._info["episode_limit"] and not info.get("battle_won") and not lost:
            info["episode_limit"] = True
        return float(reward), bool(terminated), info

    def _get_obs(self) -> np.ndarray:
        return self._arrays[0]

    def _get_state(self) -> np.ndarray:
        return self._arrays[1]

    def _get_avail_actions(self) -> np.ndarray:
        return self._arrays[2]

    def _get_alive(self) -> np.ndarray:
        return self._arrays[3]

    def _close(self) -> None:
        self.env.close()
