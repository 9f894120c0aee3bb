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
    assert assembler.add(first.to_numpy()) is None and assembler.num_pending == 1
    episode = assembler.add(second.to_numpy())
    assert assembler.num_pending == 0 and episode["terminated"]
    assert episode["observations"]["obs"][:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert episode["actions"][:, 0].tolist() == [1, 2, 3, 4, 5]
    assert episode["rewards"].tolist() == [1, 2, 3, 4, 5]


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
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        SyntheticReplayBuffer(0)
    with pytest.raises(ValueError, match="empty"):
        SyntheticReplayBuffer(3).all()
