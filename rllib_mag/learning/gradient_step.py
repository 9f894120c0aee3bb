"""One optimizer step shared by the world-model, R_m, actor and critic updates: backward, gradient average over
data-parallel learners, global-norm clip, and a guard that skips any step whose loss or gradients are not finite
(a NaN in one batch would otherwise poison the weights and Adam's moments for the rest of the run)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from rllib_mag.learning.data_parallel import DataParallel, average_gradients


def gradient_step(loss: Tensor, parameters: Iterable[Tensor], optimizer: torch.optim.Optimizer,
                  max_norm: float | None, data_parallel: DataParallel | None = None) -> tuple[float, bool]:
    """``optimizer.zero_grad(); loss.backward()``, average the gradients over the learners, clip them to global
    norm ``max_norm`` (``None``: no clipping) and step.

    The step is skipped, leaving the weights and the optimizer state untouched, when the loss or the gradient norm
    is not finite on any learner (all learners skip together, so data-parallel weights stay equal).
    Returns the gradient norm before clipping and whether the step was taken.
    """
    params = [p for p in parameters if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params, data_parallel)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, math.inf if max_norm is None else max_norm)
    finite = torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)
    bad = (~finite).float() if data_parallel is None else data_parallel.sum((~finite).float())
    if bad.item() > 0:
        optimizer.zero_grad(set_to_none=True)
        return grad_norm.item(), False
    optimizer.step()
    return grad_norm.item(), True
