"""A stand-in for oxwhirl SMAC's ``StarCraft2Env`` (no StarCraft II needed).

It has SMAC's constructor keywords, map registry fields and size formulas (``get_obs_size`` /
``get_state_size`` copied in structure from SMAC), its step contract (``(reward, terminated,
info)`` with ``battle_won``; time-outs flagged only with ``continuing_episode``), its action
layout (0 no-op for dead agents, 1 stop, 2-5 move, 6+j attack) and a toy battle: an attack
removes a third of an enemy's health; every ``enemy_period`` steps the enemy kills an ally.
:func:`install_fake_smac` puts it into ``sys.modules`` as ``smac.env``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

#: SMAC's ``map_param_registry`` entries for the maps tested here.
MAP_PARAMS: dict[str, dict[str, Any]] = {
    "corridor": dict(n_agents=6, n_enemies=24, limit=400, a_race="P", b_race="Z", unit_type_bits=0, map_type="zealots"),
    "2s3z": dict(n_agents=5, n_enemies=5, limit=120, a_race="P", b_race="P", unit_type_bits=2, map_type="stalkers_and_zealots"),
    "3s_vs_5z": dict(n_agents=3, n_enemies=5, limit=250, a_race="P", b_race="P", unit_type_bits=0, map_type="stalkers"),
    "2c_vs_64zg": dict(n_agents=2, n_enemies=64, limit=400, a_race="P", b_race="Z", unit_type_bits=0, map_type="colossus"),
    "3s5z_vs_3s6z": dict(n_agents=8, n_enemies=9, limit=170, a_race="P", b_race="P", unit_type_bits=2, map_type="stalkers_and_zealots"),
    "2s_vs_1sc": dict(n_agents=2, n_enemies=1, limit=300, a_race="P", b_race="Z", unit_type_bits=0, map_type="stalkers"),
    "3s_vs_3z": dict(n_agents=3, n_enemies=3, limit=150, a_race="P", b_race="P", unit_type_bits=0, map_type="stalkers"),
    "3s_vs_4z": dict(n_agents=3, n_enemies=4, limit=200, a_race="P", b_race="P", unit_type_bits=0, map_type="stalkers"),
}


class FakeStarCraft2Env:
    """SMAC's ``StarCraft2Env`` interface with a toy, deterministic-per-seed battle."""

    def __init__(
        self,
        map_name: str = "8m",
        step_mul: int = 8,
        move_amount: int = 2,
        difficulty: str = "7",
        game_version: str | None = None,
        seed: int | None = None,
        continuing_episode: bool = False,
        obs_all_health: bool = True,
        obs_own_health: bool = True,
        obs_last_action: bool = False,
        obs_pathing_grid: bool = False,
        obs_terrain_height: bool = False,
        obs_instead_of_state: bool = False,
        obs_timestep_number: bool = False,
        state_last_action: bool = True,
        state_timestep_number: bool = False,
        reward_sparse: bool = False,
        reward_only_positive: bool = True,
        reward_death_value: float = 10,
        reward_win: float = 200,
        reward_defeat: float = 0,
        reward_negative_scale: float = 0.5,
        reward_scale: bool = True,
        reward_scale_rate: float = 20,
        replay_dir: str = "",
        replay_prefix: str = "",
        window_size_x: int = 1920,
        window_size_y: int = 1200,
        heuristic_ai: bool = False,
        heuristic_rest: bool = False,
        debug: bool = False,
    ) -> None:
        params = MAP_PARAMS[map_name]
        self.map_name = map_name
        self.n_agents, self.n_enemies = params["n_agents"], params["n_enemies"]
        self.episode_limit = params["limit"]
        self.difficulty = difficulty
        self.continuing_episode = continuing_episode
        self.obs_all_health, self.obs_last_action = obs_all_health, obs_last_action
        self.obs_own_health = obs_own_health or obs_all_health
        self.obs_pathing_grid, self.obs_terrain_height = obs_pathing_grid, obs_terrain_height
        self.obs_instead_of_state, self.state_last_action = obs_instead_of_state, state_last_action
        self.reward_win, self.reward_death_value = reward_win, reward_death_value
        self.reward_scale, self.reward_scale_rate = reward_scale, reward_scale_rate
        self.n_actions_no_attack, self.n_actions_move = 6, 4
        self.n_actions = 6 + self.n_enemies
        self.shield_bits_ally = 1 if params["a_race"] == "P" else 0
        self.shield_bits_enemy = 1 if params["b_race"] == "P" else 0
        self.unit_type_bits = params["unit_type_bits"]
        self.n_obs_pathing, self.n_obs_height = 8, 9
        self.max_reward = self.n_enemies * reward_death_value + reward_win + self.n_enemies * 3.0
        self._seed = seed
        self._sc2_proc: Any = None
        self._episode_count = 0
        self._episode_steps = 0
        self.enemy_period = 3
        self.closed = False
        self.launches = 0

    # -- SC2 process life cycle ----------------------------------------------------------
    def _launch(self) -> None:
        self._sc2_proc = object()
        self.launches += 1
        self._rng = np.random.default_rng(self._seed)

    def full_restart(self) -> None:
        self._launch()

    def reset(self) -> tuple[list[np.ndarray], np.ndarray]:
        if self._sc2_proc is None:
            self._launch()
        self._episode_steps = 0
        self.ally_health = np.ones(self.n_agents)
        self.enemy_health = np.full(self.n_enemies, 3.0)
        self.last_action = np.zeros((self.n_agents, self.n_actions))
        self._noise = self._rng.normal(size=self.get_obs_size()).astype(np.float32)
        return self.get_obs(), self.get_state()

    def step(self, actions: list[int]) -> tuple[float, bool, dict[str, Any]]:
        actions = [int(a) for a in actions]
        for a_id, action in enumerate(actions):
            assert self.get_avail_agent_actions(a_id)[action] == 1, f"Agent {a_id} cannot perform action {action}"
        self.last_action = np.eye(self.n_actions)[np.array(actions)]
        self._episode_steps += 1
        reward = 0.0
        for action in actions:
            target = action - self.n_actions_no_attack
            if target >= 0 and self.enemy_health[target] > 0:
                self.enemy_health[target] -= 1
                reward += 1 + (self.reward_death_value if self.enemy_health[target] == 0 else 0)
        if self._episode_steps % self.enemy_period == 0 and self.ally_health.any():
            self.ally_health[np.flatnonzero(self.ally_health)[0]] = 0
        info: dict[str, Any] = {"battle_won": False}
        terminated = False
        if not self.enemy_health.any() or not self.ally_health.any():
            terminated = True
            if not self.enemy_health.any() and self.ally_health.any():
                info["battle_won"] = True
                reward += self.reward_win
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        if terminated:
            self._episode_count += 1
        if self.reward_scale:
            reward /= self.max_reward / self.reward_scale_rate
        return reward, terminated, info

    # -- SMAC's getters and sizes --------------------------------------------------------
    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        if self.ally_health[agent_id] == 0:
            return np.zeros(self.get_obs_size(), np.float32)
        return self._noise + np.float32(self._episode_steps / self.episode_limit)

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self) -> np.ndarray:
        state = np.zeros(self.get_state_size(), np.float32)
        state[: self.n_agents] = self.ally_health
        state[self.n_agents : self.n_agents + self.n_enemies] = self.enemy_health / 3
        return state

    def get_obs_size(self) -> int:
        nf_al = 4 + self.unit_type_bits
        nf_en = 4 + self.unit_type_bits
        if self.obs_all_health:
            nf_al += 1 + self.shield_bits_ally
            nf_en += 1 + self.shield_bits_enemy
        own_feats = self.unit_type_bits + ((1 + self.shield_bits_ally) if self.obs_own_health else 0)
        if self.obs_last_action:
            nf_al += self.n_actions
        move_feats = self.n_actions_move
        move_feats += self.n_obs_pathing if self.obs_pathing_grid else 0
        move_feats += self.n_obs_height if self.obs_terrain_height else 0
        return move_feats + self.n_enemies * nf_en + (self.n_agents - 1) * nf_al + own_feats

    def get_state_size(self) -> int:
        if self.obs_instead_of_state:
            return self.get_obs_size() * self.n_agents
        nf_al = 4 + self.shield_bits_ally + self.unit_type_bits
        nf_en = 3 + self.shield_bits_enemy + self.unit_type_bits
        size = self.n_enemies * nf_en + self.n_agents * nf_al
        return size + (self.n_agents * self.n_actions if self.state_last_action else 0)

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        if self.ally_health[agent_id] == 0:
            return [1] + [0] * (self.n_actions - 1)
        return [0, 1, 1, 1, 1, 1] + [int(h > 0) for h in self.enemy_health]

    def get_avail_actions(self) -> list[list[int]]:
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict[str, int]:
        return {
            "state_shape": self.get_state_size(),
            "obs_shape": self.get_obs_size(),
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def seed(self) -> int | None:
        return self._seed

    def close(self) -> None:
        self.closed = True


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so submodule imports resolve through sys.modules
    module.__dict__.update(attrs)
    return module


def install_fake_smac(monkeypatch: Any) -> None:
    """Make ``import smac.env`` give :class:`FakeStarCraft2Env` (undone by ``monkeypatch``)."""
    modules = {
        "smac": _module("smac"),
        "smac.env": _module("smac.env", StarCraft2Env=FakeStarCraft2Env),
        "smac.env.starcraft2": _module("smac.env.starcraft2"),
        "smac.env.starcraft2.maps": _module("smac.env.starcraft2.maps"),
        "smac.env.starcraft2.maps.smac_maps": _module(
            "smac.env.starcraft2.maps.smac_maps", get_smac_map_registry=lambda: MAP_PARAMS
        ),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def install_smac3(monkeypatch: Any) -> None:
    """Make ``smac`` look like PyPI's SMAC3 (has ``smac.facade``, no ``smac.env``)."""
    monkeypatch.setitem(sys.modules, "smac", _module("smac", facade=_module("smac.facade")))
    monkeypatch.setitem(sys.modules, "smac.facade", sys.modules["smac"].facade)
    for name in ("smac.env", "smac.env.starcraft2", "smac.env.starcraft2.maps", "smac.env.starcraft2.maps.smac_maps"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def hide_smac(monkeypatch: Any) -> None:
    """Make ``import smac`` fail as if SMAC were not installed."""
    monkeypatch.setitem(sys.modules, "smac", None)
