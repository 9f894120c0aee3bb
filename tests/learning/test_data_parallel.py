"""Data-parallel learners (torch.distributed, gloo): two processes on equal shards of a batch take the step one
process takes on the whole batch (torch core, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rllib_mag.learning import PPOConfig, make_optimizers, ppo_update
from rllib_mag.learning.data_parallel import DataParallel
from rllib_mag.learning.ppo import normalize_advantages
from rllib_mag.models import Actor, AttentionCritic, WorldModel, from_preset
from rllib_mag.models.synthetic import random_sequence_batch
from rllib_mag.planning import ModelRewardPredictor, PlanningConfig, SyntheticBatch, imagine

D, A, N = 6, 4, 3
M, K = 8, 4
#: One minibatch per epoch (each learner's minibatch is its whole shard), 3 epochs: order-free, yet each step
#: depends on the one before.
CFG = PPOConfig(ppo_minibatch_size=M * K, ppo_epochs=3)


def _problem() -> tuple[Actor, AttentionCritic, SyntheticBatch]:
    """The same networks and imagined batch in every process (fixed seeds)."""
    torch.manual_seed(0)
    cfg = from_preset("small")
    wm, actor, critic, rm = WorldModel(cfg, D, A), Actor(cfg, A), AttentionCritic(cfg), ModelRewardPredictor(cfg)
    with torch.no_grad():
        start = wm.loss(random_sequence_batch(4, 2, N, D, A)).posterior.map(lambda x: x.flatten(0, 1))
    plan = PlanningConfig(rollout_length_k=K, planning_horizon_H=2, planning_candidates_L=2)
    batch = imagine(wm, actor, critic, rm, start, plan, torch.Generator().manual_seed(0))
    return actor, critic, batch


def _train(actor: Actor, critic: AttentionCritic, batch: SyntheticBatch,
           data_parallel: DataParallel | None = None) -> dict[str, torch.Tensor]:
    actor_opt, critic_opt = make_optimizers(actor, critic, CFG)
    ppo_update(actor, critic, actor_opt, critic_opt, batch, CFG, data_parallel=data_parallel)
    return {**{f"actor.{k}": v for k, v in actor.state_dict().items()},
            **{f"critic.{k}": v for k, v in critic.state_dict().items()}}


def _learner(rank: int, world_size: int, workdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{workdir}/rendezvous", rank=rank, world_size=world_size)
    try:
        actor, critic, batch = _problem()
        weights = _train(actor, critic, batch.split(world_size)[rank], DataParallel())
        torch.save(weights, f"{workdir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_learners_on_shards_take_the_single_learner_steps(tmp_path: Path) -> None:
    assert M == _problem()[2].actions.shape[0]
    mp.spawn(_learner, args=(2, str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))
    single = _train(*_problem())
    one_shard_alone = _train(*_problem()[:2], _problem()[2].split(2)[0])
    for name, value in single.items():
        assert torch.equal(rank0[name], rank1[name]), name
        if name.endswith("in_proj_bias"):
            # Its key third has a zero gradient in exact arithmetic (softmax ignores a shift of all keys), and
            # Adam turns the float noise there into lr-sized steps; compare the query and value thirds.
            query, _, values = value.chunk(3)
            query0, _, values0 = rank0[name].chunk(3)
            value, rank0[name] = torch.cat([query, values]), torch.cat([query0, values0])
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)
    # Without the gradient average a shard's step is another step (Adam's sign-like first steps can agree on a
    # few tensors, e.g. the output bias, so the weights are compared).
    assert all(not torch.allclose(one_shard_alone[name], single[name], atol=1e-4) for name in single
               if name.startswith("actor.") and name.endswith("weight"))


def test_synthetic_batch_splits_into_equal_shards() -> None:
    batch = _problem()[2]
    shards = batch.split(4)
    assert [shard.actions.shape[0] for shard in shards] == [M // 4] * 4
    for name in SyntheticBatch.PER_START:
        assert torch.equal(torch.cat([getattr(shard, name) for shard in shards]), getattr(batch, name))
    assert all(shard.accumulated_error is batch.accumulated_error for shard in shards)
    with pytest.raises(ValueError, match="cannot split 8 imagined rollouts into 3 equal shards"):
        batch.split(3)


@pytest.mark.parametrize("shape, scale", [((50, 3), 4.0), ((50, 3), 0.01), ((2,), 1.0)])
def test_normalized_advantages_match_torch_std(shape, scale) -> None:
    """Wide and narrow spreads (a sum of squared deviations below 1) and two samples (unbiased: n - 1 = 1)."""
    advantages = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * scale + 7.0
    expected = (advantages - advantages.mean()) / (advantages.std() + 1e-4)
    torch.testing.assert_close(normalize_advantages(advantages), expected, rtol=1e-5, atol=1e-5)


def _model_learner(rank: int, world_size: int, workdir: str) -> None:
    """World-model and R_m steps on this rank's own shard of a real batch, then a step where only rank 1's
    shard holds a NaN."""
    from rllib_mag.learning.world_model_trainer import WorldModelTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{workdir}/rendezvous", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        cfg = from_preset("small")
        trainer = WorldModelTrainer(WorldModel(cfg, D, A), ModelRewardPredictor(cfg), data_parallel=DataParallel())
        torch.manual_seed(1 + rank)  # different dropout masks and latent samples on each rank, as in training
        shard = random_sequence_batch(6, 2, N, D, A, seed=rank)  # each rank's own data
        trainer.world_model_step(shard)
        trainer.model_reward_step(shard)
        after_steps = {k: v.clone() for k, v in trainer.world_model.state_dict().items()}
        after_steps.update({f"rm.{k}": v.clone() for k, v in trainer.model_reward.state_dict().items()})
        if rank == 1:
            shard["obs"][0, 0, 0, 0] = float("nan")
        skipped = trainer.world_model_step(shard)["model_num_nonfinite_skipped"]
        unchanged = all(torch.equal(v, after_steps[k]) for k, v in trainer.world_model.state_dict().items())
        torch.save({"weights": after_steps, "skipped": skipped, "unchanged": unchanged}, f"{workdir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_data_parallel_model_steps_keep_the_learners_equal_and_skip_together(tmp_path: Path) -> None:
    mp.spawn(_model_learner, args=(2, str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))
    for name, value in rank0["weights"].items():  # averaged gradients: the same step on different shards
        torch.testing.assert_close(value, rank1["weights"][name], rtol=0, atol=1e-7, msg=name)
    assert rank0["skipped"] == rank1["skipped"] == 1.0  # rank 1's NaN made both skip
    assert rank0["unchanged"] and rank1["unchanged"]
