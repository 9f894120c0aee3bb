"""SMAC backend against the fake ``StarCraft2Env``: shapes, option passthrough, episode ends, install errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_sc2 import MAP_PARAMS, hide_smac, install_fake_smac, install_smac3

from rllib_mag.envs.multi_agent import StarCraftMultiAgentEnv
from rllib_mag.envs.smac import SMACBackend
from rllib_mag.envs.team import TeamEnv

#: environments.md's ground truth from real SMAC: (agents, enemies, obs, state, actions, limit).
SMAC_SHAPES = {
    "corridor": (6, 24, 156, 282, 30, 400),
    "2s3z": (5, 5, 80, 120, 11, 120),
    "3s_vs_5z": (3, 5, 48, 68, 11, 250),
    "2c_vs_64zg": (2, 64, 332, 342, 70, 400),
    "3s5z_vs_3s6z": (8, 9, 136, 230, 15, 170),
    "2s_vs_1sc": (2, 1, 17, 27, 7, 300),
    "3s_vs_3z": (3, 3, 36, 54, 9, 150),
    "3s_vs_4z": (3, 4, 42, 61, 10, 200),
}


@pytest.fixture
def fake_sc2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fake SMAC installed, SC2PATH pointing at a folder holding every SMAC map file."""
    install_fake_smac(monkeypatch)
    maps = tmp_path / "Maps" / "SMAC_Maps"
    maps.mkdir(parents=True)
    for name in MAP_PARAMS:
        (maps / f"{name}.SC2Map").touch()
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("map_name", sorted(SMAC_SHAPES))
def test_shapes_match_real_smac(fake_sc2: Path, map_name: str) -> None:
    backend = SMACBackend(map_name)
    info = backend.get_env_info()
    keys = ("n_agents", "n_enemies", "obs_shape", "state_shape", "n_actions", "episode_limit")
    assert tuple(info[k] for k in keys) == SMAC_SHAPES[map_name]
    obs, state = backend.reset()
    assert obs.shape == (info["n_agents"], info["obs_shape"]) and state.shape == (info["state_shape"],)


def test_options_pass_through(fake_sc2: Path) -> None:
    backend = SMACBackend("2s3z", difficulty="3", reward_scale_rate=10, continuing_episode=True, seed=3, obs_last_action=True)
    env = backend.env
    assert (env.difficulty, env.reward_scale_rate, env.continuing_episode, env.seed()) == ("3", 10, True, 3)
    assert backend.get_env_info()["obs_shape"] == 80 + 4 * 11  # obs_last_action adds n_actions per ally
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['difficulty_level', 'foo'\] for the smac backend"):
        SMACBackend("2s3z", difficulty_level="7", foo=1)
    with pytest.raises(ValueError, match="unknown map '4s_vs_5z' for the smac backend; available: .*corridor"):
        SMACBackend("4s_vs_5z")


def test_win_loss_and_timeout(fake_sc2: Path) -> None:
    backend = SMACBackend("3s_vs_5z", seed=0)
    env = TeamEnv(backend)
    obs, _ = env.reset()
    assert obs["action_mask"][0].tolist() == [0, 1, 1, 1, 1, 1] + [1] * 5 and obs["alive"].all()
    backend.env.enemy_period = 4  # the toy enemy kills an ally every 4 steps
    done, info = False, {}
    while not done:  # attack the first living enemy (no-op when dead): 15 hits beat the toy enemy
        obs, reward, terminated, truncated, info = env.step(
            [6 + int(np.flatnonzero(m[6:])[0]) if m[1] else 0 for m in obs["action_mask"]])
        done = terminated or truncated
    assert terminated and info["battle_won"] is True and backend.battle_won

    env.reset()
    obs, done = None, False
    while not done:  # never attack: the toy enemy kills all allies
        obs, _, terminated, truncated, info = env.step([1 if a else 0 for a in backend.get_alive()])
        done = terminated or truncated
    assert terminated and info == {"battle_won": False}
    assert obs["action_mask"][:, 0].all() and not obs["alive"].any() and not obs["obs"].any()

    backend.env.enemy_period = 10**9
    env.reset()
    for t in range(250):
        _, _, terminated, truncated, info = env.step([1, 1, 1])
    assert (terminated, truncated) == (False, True) and info == {"battle_won": False, "episode_limit": True}


def test_seed_relaunches_running_game(fake_sc2: Path) -> None:
    backend = SMACBackend("2s3z", seed=1)
    per_agent = StarCraftMultiAgentEnv(backend)
    first, _ = per_agent.reset(seed=5)
    assert backend.env.launches == 1 and backend.seed() == 5
    again, _ = per_agent.reset(seed=5)
    assert backend.env.launches == 2
    np.testing.assert_array_equal(first["agent_0"]["obs"], again["agent_0"]["obs"])
    per_agent.close()
    assert backend.env.closed
    with pytest.raises(RuntimeError, match="after close"):
        backend.reset()


def test_smac_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_smac(monkeypatch)
    with pytest.raises(ImportError, match="SMAC is not installed.*pip install git\\+https://github.com/oxwhirl/smac.git"):
        SMACBackend("corridor")


def test_smac3_installed_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    install_smac3(monkeypatch)
    with pytest.raises(ImportError, match="SMAC3 .*not the StarCraft Multi-Agent Challenge.*pip uninstall -y smac"):
        SMACBackend("corridor")


def test_sc2_or_maps_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_fake_smac(monkeypatch)
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="StarCraft II not found at .*nowhere.*SC2PATH"):
        SMACBackend("corridor")
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="SMAC map .*SMAC_Maps/corridor.SC2Map is missing"):
        SMACBackend("corridor")
