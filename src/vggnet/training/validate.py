"""Validation during training: loss, top-1 and top-5 error of the held-out images, each process taking its share,
with or without the mirror images (the paper's practice)."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base.progress import track
from . import distributed as dist_utils
from .settings import TrainConfig, load_recipe  # noqa: F401  (load_recipe: part of this module's API)


@torch.inference_mode()
def evaluate_split(
    net: nn.Module,
    dataset: Any,
    batch_size: int,
    ctx: dist_utils.Context,
    memory_format: torch.memory_format = torch.channels_last,
    autocast: Callable[[], Any] = nullcontext,
    flip: bool = False,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of a validation set, each rank taking every world-th image; with ``flip``, of
    the soft-max posteriors of each image and its mirror averaged."""
    net.eval()
    indices = list(range(ctx.rank, len(dataset), ctx.world))
    loss, top1, top5, n = 0.0, 0.0, 0.0, 0
    batches = dataset.batches(indices, batch_size, epoch=0, device=ctx.device)
    for x, y, _ in track(batches, len(indices), "validation", size=lambda batch: len(batch[1])):
        if len(y) == 0:
            continue
        x = x.contiguous(memory_format=memory_format)
        with autocast():
            logits = F.log_softmax(net(x).float(), 1)
            if flip:  # the log of the mean of the two posteriors, computed stably
                mirrored = F.log_softmax(net(x.flip(3)).float(), 1)
                logits = torch.logaddexp(logits, mirrored) - math.log(2)
        loss += F.nll_loss(logits, y, reduction="sum").item()
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
        top1, top5, n = top1 + hit[:, 0].sum().item(), top5 + hit.any(1).sum().item(), n + len(y)
    loss, top1, top5, n = dist_utils.reduce_sum([loss, top1, top5, n], ctx)
    return {"loss": loss / max(n, 1), "top1": top1 / max(n, 1), "top5": top5 / max(n, 1)}
