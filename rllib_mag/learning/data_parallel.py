"""Data parallelism across learners: every learner takes an equal shard of each batch and the gradients are
averaged before clipping and the optimizer step, so N learners take the same step one learner would take on the
whole batch (what `torch.nn.parallel.DistributedDataParallel` does for a `forward`; MAG's losses are not module
forwards, so the average is taken here). RLlib's `LearnerGroup` starts the `torch.distributed` process group
(gloo on CPU, NCCL on GPU) when `num_learners > 1`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor


class DataParallel:
    """Collectives over the learners' process group (all ranks must call each method in the same order)."""

    def __init__(self) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs a torch.distributed process group (RLlib starts one for "
                               "num_learners > 1)")
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()

    def average_gradients(self, parameters: Iterable[Tensor]) -> None:
        """Replace every `.grad` by its mean over the learners, in one all-reduce (a missing grad counts as 0)."""
        params = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        for param, grad in zip(params, flat.split([g.numel() for g in grads])):
            param.grad = grad.view_as(param)

    def sum(self, tensor: Tensor) -> Tensor:
        """The element-wise sum of `tensor` over the learners."""
        total = tensor.clone()
        dist.all_reduce(total)
        return total


def average_gradients(parameters: Iterable[Tensor], data_parallel: DataParallel | None) -> None:
    """Average the gradients over the learners; nothing to do for a single learner."""
    if data_parallel is not None:
        data_parallel.average_gradients(parameters)
