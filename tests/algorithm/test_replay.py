"""D_e (`SequenceReplayBuffer`), D_m (`SyntheticReplayBuffer`) and the episode assembler of the env-runner
chunks: rows, capacity, checkpoint state."""

import numpy as np
import pytest
import torch
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from rllib_mag.algorithm.replay import EpisodeAssembler, SequenceReplayBuffer, SyntheticReplayBuffer
from rllib_mag.planning.imagination import SyntheticBatch


def test_real_buffer_round_trip_keeps_rows_and_sampling():
    """D_e's checkpoint state restores the same rows, so a restored run samples the same sequences."""
    rng = np.random.default_rng(0)
    buffer = SequenceReplayBuffer(capacity=30, n_agents=2, obs_dim=3, n_actions=4)
    for length in (7, 12, 9, 6):  # 38 rows: the ring wraps
        obs = {"obs": rng.normal(size=(length + 1, 2, 3)), "action_mask": np.ones((length + 1, 2, 4)),
               "alive": np.ones((length + 1, 2))}
        buffer.add_episode(obs, rng.integers(0, 4, (length, 2)), rng.normal(size=length), terminated=True)
    assert len(buffer) == 30 and buffer.num_env_steps_added == 34
    clone = SequenceReplayBuffer(capacity=30, n_agents=2, obs_dim=3, n_actions=4)
    clone.set_state(buffer.get_state())
    a, b = buffer.sample(5, 6, np.random.default_rng(1)), clone.sample(5, 6, np.random.default_rng(1))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert a["obs"].shape == (6, 5, 2, 3) and (a["is_first"][0] == 1).all()


def test_episode_assembler_joins_chunks_across_sample_calls():
    """Chunks of one episode (as a vectorized env runner returns them) become one D_e episode."""
    def obs(t):
        return {"obs": np.full((2, 3), t, np.float32), "action_mask": np.ones((2, 4), np.float32),
                "alive": np.ones(2, np.float32)}

    first = SingleAgentEpisode()
    first.add_env_reset(observation=obs(0))
    for t in range(1, 4):
        first.add_env_step(observation=obs(t), action=np.array([t, t]), reward=float(t))
    second = first.cut()
    for t in range(4, 6):
        second.add_env_step(observation=obs(t), action=np.array([t, t]), reward=float(t), terminated=t == 5)
    assembler = EpisodeAssembler()
    assert assembler.add(first.to_numpy(), source=0) is None and assembler.num_pending == 1
    episode = assembler.add(second.to_numpy(), source=0)
    assert assembler.num_pending == 0 and episode["terminated"]
    assert episode["observations"]["obs"][:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert episode["actions"][:, 0].tolist() == [1, 2, 3, 4, 5]
    assert episode["rewards"].tolist() == [1, 2, 3, 4, 5] and episode["rewards"].dtype == np.float32
    assert assembler.num_dropped == 0


def test_episode_assembler_drops_what_a_failed_runner_left_unfinished():
    """No partial episode reaches D_e: a continuation whose start was never seen (even one step in) is dropped,
    and so are the unfinished episodes of a runner that failed; other runners' episodes go on."""
    def obs(t):
        return {"obs": np.full((2, 3), t, np.float32), "action_mask": np.ones((2, 4), np.float32),
                "alive": np.ones(2, np.float32)}

    def steps(episode, start, stop, done=False):
        for t in range(start + 1, stop + 1):
            episode.add_env_step(observation=obs(t), action=np.array([t, t]), reward=1.0, terminated=done and t == stop)
        return episode

    def chunk(start, stop, done=False):
        """Steps start..stop of a new episode as one chunk (a continuation, t_started = start, when start > 0)."""
        episode = SingleAgentEpisode()
        episode.add_env_reset(observation=obs(0))
        if start:
            episode = steps(episode, 0, start).cut()
        return steps(episode, start, stop, done).to_numpy()

    assembler = EpisodeAssembler()
    assert assembler.add(chunk(1, 3, done=True), source=2) is None and assembler.num_dropped == 1  # began at t=1
    kept = SingleAgentEpisode()
    kept.add_env_reset(observation=obs(0))
    steps(kept, 0, 2)
    kept_rest = steps(kept.cut(), 2, 3, done=True)
    assert assembler.add(kept.to_numpy(), source=1) is None and assembler.add(chunk(0, 2), source=2) is None
    assembler.drop_source(2)
    assert assembler.num_pending == 1 and assembler.num_dropped == 2
    assert len(assembler.add(kept_rest.to_numpy(), source=1)["rewards"]) == 3  # runner 1's episode went on
    first = SingleAgentEpisode()
    first.add_env_reset(observation=obs(0))
    steps(first, 0, 2)
    rest = steps(first.cut(), 2, 4, done=True)
    assert assembler.add(first.to_numpy(), source=3) is None
    assert assembler.add(rest.to_numpy(), source=1) is None and assembler.num_dropped == 3  # another runner's id
    assert len(assembler.add(rest.to_numpy(), source=3)["rewards"]) == 4


def synthetic_round(m: int, k: int, value: float) -> SyntheticBatch:
    n, a, f = 2, 3, 4
    per_start = {"features": torch.full((m, k, n, f), value), "actions": torch.zeros(m, k, n, dtype=torch.long),
                 "logp": torch.zeros(m, k, n), "logits": torch.zeros(m, k, n, a), "action_mask": torch.ones(m, k, n, a),
                 "reward": torch.full((m, k), value), "discount": torch.ones(m, k), "values": torch.zeros(m, k + 1, n)}
    stats = {name: torch.full((k,), value) for name in ("chosen_error", "mean_candidate_error", "step_error",
                                                         "accumulated_error")}
    return SyntheticBatch(**per_start, **stats)


def test_synthetic_buffer_keeps_the_rounds_that_fit_and_always_the_newest():
    """Capacity M x k (the config default) keeps exactly the latest round; 2 M x k keeps two; a round larger than
    the capacity is still kept whole."""
    one_round = SyntheticReplayBuffer(4 * 3)
    for value in (1.0, 2.0, 3.0):
        one_round.add(synthetic_round(4, 3, value))
        assert len(one_round) == 12 and (one_round.all().reward == value).all()
    two_rounds = SyntheticReplayBuffer(2 * 4 * 3)
    for value in (1.0, 2.0, 3.0):
        two_rounds.add(synthetic_round(4, 3, value))
    both = two_rounds.all()
    assert len(two_rounds) == 24 and both.reward[:, 0].tolist() == [2.0] * 4 + [3.0] * 4
    assert both.chosen_error.tolist() == [2.5] * 3  # per-step planner statistics are averaged over rounds
    small = SyntheticReplayBuffer(5)
    small.add(synthetic_round(4, 3, 1.0))
    assert len(small) == 12
    restored = SyntheticReplayBuffer(24)
    restored.set_state(two_rounds.get_state())
    assert torch.equal(restored.all().features, both.features)
    with pytest.raises(ValueError, match="synthetic buffer capacity must be >= 1 transition, got 0"):
        SyntheticReplayBuffer(0)
    with pytest.raises(ValueError, match="^the synthetic replay buffer is empty$"):
        SyntheticReplayBuffer(3).all()
    single = SyntheticReplayBuffer(1)  # the smallest capacity: one round, always the newest
    for value in (1.0, 2.0):
        single.add(synthetic_round(1, 1, value))
    assert len(single) == 1 and single.all().reward.item() == 2.0
    mixed = SyntheticReplayBuffer(4 * 3 + 2 * 3)  # drops the oldest round only once the rest still fills it
    for m, value in ((2, 1.0), (4, 2.0), (2, 3.0)):
        mixed.add(synthetic_round(m, 3, value))
    assert mixed.all().reward[:, 0].tolist() == [2.0] * 4 + [3.0] * 2


def _episode(rng, length, n_agents=2, obs_dim=3, n_actions=4):
    obs = {"obs": rng.normal(size=(length + 1, n_agents, obs_dim)).astype(np.float32),
           "action_mask": rng.integers(0, 2, (length + 1, n_agents, n_actions)).astype(np.float32),
           "alive": rng.integers(0, 2, (length + 1, n_agents)).astype(np.float32)}
    return obs, rng.integers(0, n_actions, (length, n_agents)), rng.normal(size=length).astype(np.float32)


def _reference_rows(episodes):
    """D_e's rows built by hand from contracts.md section 3: an episode of n steps gives n + 1 rows; row t holds
    o_t, a_t (0 after the last obs), r_t (the reward that led to o_t, 0 at the first row) and the flags."""
    rows = {key: [] for key in ("obs", "action_mask", "alive", "action", "reward", "is_first", "is_last",
                                "is_terminal")}
    for (obs, actions, rewards), terminated in episodes:
        n = len(actions)
        for t in range(n + 1):
            for key in ("obs", "action_mask", "alive"):
                rows[key].append(obs[key][t])
            rows["action"].append(actions[t] if t < n else np.zeros_like(actions[0]))
            rows["reward"].append(0.0 if t == 0 else rewards[t - 1])
            rows["is_first"].append(float(t == 0))
            rows["is_last"].append(float(t == n))
            rows["is_terminal"].append(float(t == n and terminated))
    return {key: np.asarray(value) for key, value in rows.items()}


@pytest.mark.parametrize("capacity", [40, 23])  # 23: the ring wraps and the oldest episode is half overwritten
def test_real_buffer_rows_and_windows_equal_a_reference_list(capacity):
    rng = np.random.default_rng(0)
    buffer = SequenceReplayBuffer(capacity=capacity, n_agents=2, obs_dim=3, n_actions=4)
    episodes = [(_episode(rng, n), terminated) for n, terminated in ((5, True), (8, False), (3, True), (9, True))]
    for (obs, actions, rewards), terminated in episodes:
        buffer.add_episode(obs, actions, rewards, terminated)
    rows = {key: value[-capacity:] for key, value in _reference_rows(episodes).items()}  # the newest rows
    size = len(rows["reward"])
    assert len(buffer) == size == min(capacity, 29) and buffer.num_env_steps_added == 25
    state = buffer.get_state()["rows"]
    for key, value in rows.items():
        assert state[key].dtype == (np.int64 if key == "action" else np.float32), key
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    length, batch_size = 6, 64
    windows = buffer.sample(batch_size, length, np.random.default_rng(3))
    starts = np.random.default_rng(3).integers(0, size - length + 1, size=batch_size)  # what sample() draws
    assert starts.min() == 0 and starts.max() == size - length  # both ends of the range are drawn here
    for key, value in rows.items():
        expected = np.stack([value[s:s + length] for s in starts], 1)
        if key == "is_first":
            expected[0] = 1.0  # every window starts a fresh recurrent state
        np.testing.assert_array_equal(windows[key], expected, err_msg=key)


def test_real_buffer_capacity_limits_are_exact():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="replay capacity must be at least 2 rows, got 1"):
        SequenceReplayBuffer(capacity=1, n_agents=2, obs_dim=3, n_actions=4)
    buffer = SequenceReplayBuffer(capacity=2, n_agents=2, obs_dim=3, n_actions=4)
    buffer.add_episode(*_episode(rng, 1), terminated=True)  # 2 rows fill it exactly
    assert len(buffer) == 2 and buffer.sample(1, 2, rng)["is_last"][:, 0].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="an episode of 3 rows does not fit a replay buffer of 2 rows"):
        buffer.add_episode(*_episode(rng, 2), terminated=True)
    with pytest.raises(ValueError, match="cannot sample windows of 3 rows from 2 stored rows"):
        buffer.sample(1, 3, rng)
    obs, actions, rewards = _episode(rng, 1)
    with pytest.raises(ValueError, match="got 2 observations, 1 actions, 0 rewards"):
        buffer.add_episode(obs, actions, rewards[:0], terminated=True)
    with pytest.raises(ValueError, match="got 1 observations, 1 actions, 1 rewards"):
        buffer.add_episode({k: v[:1] for k, v in obs.items()}, actions, rewards, terminated=True)
    restored = SequenceReplayBuffer(capacity=2, n_agents=2, obs_dim=3, n_actions=4)
    restored.set_state(buffer.get_state())
    assert restored.num_env_steps_added == buffer.num_env_steps_added == 1
