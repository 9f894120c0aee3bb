"""SMAX backend: shapes, maps, seeding, masks vs. the SMAX state, deaths, wins/losses, limits, bad input."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rllib_mag.envs.smax import SMAX_MAPS, SMAXBackend

STOP = 4


def random_valid(avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(m)) for m in avail])


def attack_or_stop(avail: np.ndarray) -> np.ndarray:
    """Attack the first enemy in range, else stop."""
    return np.array([5 + int(np.flatnonzero(m[5:])[0]) if m[5:].any() else STOP for m in avail])


def test_env_info_and_shapes(smax: SMAXBackend) -> None:
    info = smax.get_env_info()
    assert info == {"n_agents": 3, "n_enemies": 5, "obs_shape": 101, "state_shape": 96, "n_actions": 10, "episode_limit": 250}
    obs, state = smax.reset()
    assert obs.shape == (3, 101) and state.shape == (96,) and obs.dtype == np.float32
    np.testing.assert_array_equal(smax.get_avail_actions(), [[1, 1, 1, 1, 1, 0, 0, 0, 0, 0]] * 3)
    assert smax.get_alive().all() and smax.agent_ids == ["ally_0", "ally_1", "ally_2"]


@pytest.mark.parametrize(
    ("map_name", "expected"),
    [("corridor", (6, 24, 387, 360, 29, 400)), ("2s3z", (5, 5, 127, 120, 10, 120)),
     ("3s_vs_3z", (3, 3, 75, 72, 8, 150)), ("3s_vs_4z", (3, 4, 88, 84, 9, 200)),
     ("3s5z_vs_3s6z", (8, 9, 218, 204, 14, 170))],
)
def test_custom_and_builtin_map_shapes(map_name: str, expected: tuple[int, ...]) -> None:
    info = SMAXBackend(map_name, seed=0).get_env_info()  # builds the scenario; nothing compiles
    keys = ("n_agents", "n_enemies", "obs_shape", "state_shape", "n_actions", "episode_limit")
    assert tuple(info[k] for k in keys) == expected


def test_unknown_and_unsupported_maps() -> None:
    with pytest.raises(ValueError, match=r"unknown map 'nope' for the smax backend; available: .*3s_vs_5z.*corridor"):
        SMAXBackend("nope")
    for name, unit in (("2c_vs_64zg", "colossus"), ("2s_vs_1sc", "spine crawler")):
        with pytest.raises(ValueError, match=rf"{unit}.*'smac'"):
            SMAXBackend(name)
    assert "corridor" in SMAX_MAPS and "2c_vs_64zg" not in SMAX_MAPS


def test_seeded_determinism(smax: SMAXBackend) -> None:
    def rollout(backend: SMAXBackend, seed: int) -> tuple[list[np.ndarray], list[float]]:
        backend.seed(seed)
        obs = [backend.reset()[0].copy()]
        rng, rewards = np.random.default_rng(0), []
        for _ in range(15):
            reward, done, _ = backend.step(random_valid(backend.get_avail_actions(), rng))
            obs.append(backend.get_obs().copy())
            rewards.append(reward)
            if done:
                break
        return obs, rewards

    twin = SMAXBackend("3s_vs_5z", seed=7)  # shares smax's compiled functions
    first, second = rollout(smax, 7), rollout(twin, 7)
    for a, b in zip(first[0], second[0]):
        np.testing.assert_array_equal(a, b)
    assert first[1] == second[1]
    assert not np.array_equal(rollout(smax, 8)[0][0], first[0][0])
    assert twin.core is smax.core and smax.core.step._cache_size() == 1  # no recompilation


def test_masks_match_smax_state_and_dead_agents(smax: SMAXBackend) -> None:
    """Attack masks == (enemy alive and within range); dead agents: zero obs, stop-only mask."""
    smax.seed(3)
    smax.reset()
    rng = np.random.default_rng(3)
    ranges = np.asarray(smax.core.env.unit_type_attack_ranges)
    saw_dead = saw_attack = False
    done = False
    while not done:
        state = smax.jax_state.state
        pos, alive, types = (np.asarray(x) for x in (state.unit_positions, state.unit_alive, state.unit_types))
        avail, n = smax.get_avail_actions(), 3
        for i in range(n):
            dist = np.linalg.norm(pos[n:] - pos[i], axis=-1)
            expected = (dist < ranges[types[i]]) & alive[n:] & alive[i]
            np.testing.assert_array_equal(avail[i, 5:].astype(bool), expected)
            if not alive[i]:
                saw_dead = True
                np.testing.assert_array_equal(avail[i], np.eye(10, dtype=np.int8)[STOP])
                assert not smax.get_obs()[i].any() and not smax.get_alive()[i]
        saw_attack |= bool(avail[:, 5:].any())
        _, done, _ = smax.step(attack_or_stop(avail) if rng.random() < 0.7 else random_valid(avail, rng))
    assert saw_dead and saw_attack


def test_scripted_win(smax: SMAXBackend) -> None:
    """Enemies placed next to the allies with almost no health: attacking wins."""
    smax.seed(0)
    smax.reset()
    inner = smax.jax_state.state
    pos = inner.unit_positions.at[3:].set(inner.unit_positions[0] + jnp.array([1.0, 0.0]))
    smax._state = smax.jax_state.replace(state=inner.replace(unit_positions=pos, unit_health=inner.unit_health.at[3:].set(0.1)))
    reward, done, info = smax.step([STOP] * 3)  # refresh masks from the edited state
    total = reward
    while not done:
        reward, done, info = smax.step(attack_or_stop(smax.get_avail_actions()))
        total += reward
    assert info == {"battle_won": True} and smax.battle_won
    assert total >= 10.0  # SMAX's +1 win bonus, scaled x10 to SMAC's scale


def test_scripted_loss(smax: SMAXBackend) -> None:
    smax.seed(0)
    smax.reset()
    inner = smax.jax_state.state
    smax._state = smax.jax_state.replace(state=inner.replace(unit_health=inner.unit_health.at[:3].set(0.0)))
    _, done, info = smax.step([STOP] * 3)
    assert done and info == {"battle_won": False} and not smax.battle_won
    assert not smax.get_alive().any() and not smax.get_obs().any()


def test_episode_limit_is_exact(smax_short: SMAXBackend) -> None:
    for _ in range(2):
        smax_short.reset()
        for t in range(1, 6):
            _, done, info = smax_short.step([STOP] * 3)
            assert done == (t == 5)
        assert info == {"battle_won": False, "episode_limit": True}


def test_reward_scale_option(smax_short: SMAXBackend) -> None:
    raw = SMAXBackend("3m", seed=0, episode_limit=5, reward_scale_to_smac=False)
    assert raw.core is smax_short.core and raw.reward_scale == 1.0 and smax_short.reward_scale == 10.0


def test_bad_inputs() -> None:
    backend = SMAXBackend("3s_vs_5z", seed=0)
    with pytest.raises(RuntimeError, match="before reset"):
        backend.get_obs()
    backend.reset()
    with pytest.raises(ValueError, match=r"expected 3 actions .*'ally_0'.*got shape \(2,\)"):
        backend.step([4, 4])
    with pytest.raises(ValueError, match=r"agent 'ally_1': action 10 out of range \[0, 10\)"):
        backend.step([4, 10, 4])
    with pytest.raises(ValueError, match=r"agent 'ally_2': action 7 is not available; allowed actions: \[0, 1, 2, 3, 4\]"):
        backend.step([4, 4, 7])
    with pytest.raises(ValueError, match="integers"):
        backend.step([4, 4, 0.5])
    with pytest.raises(ValueError, match="attack_mode"):
        SMAXBackend("3m", attack_mode="nearest")
    backend.close()
    backend.close()  # idempotent
    for call in (backend.reset, backend.get_state, lambda: backend.step([4, 4, 4])):
        with pytest.raises(RuntimeError, match="after close"):
            call()


def test_step_after_episode_end(smax_short: SMAXBackend) -> None:
    smax_short.reset()
    for _ in range(5):
        smax_short.step([STOP] * 3)
    with pytest.raises(RuntimeError, match="episode ended"):
        smax_short.step([STOP] * 3)
    assert smax_short.get_obs().shape == (3, smax_short.get_env_info()["obs_shape"])  # terminal obs still readable
