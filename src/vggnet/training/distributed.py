"""Running under torchrun: process group set-up and the few collectives training needs."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..base.devices import pick_device


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Context:
    """Join the process group torchrun described in the environment (gloo on CPU, NCCL on GPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local_rank, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def reduce_sum(values: list[float], ctx: Context) -> list[float]:
    """Sum a few numbers over all ranks."""
    if not ctx.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def reduce_any(flags: list[bool], ctx: Context) -> list[bool]:
    """True where any rank says True (a stop request, a non-finite loss)."""
    if not ctx.distributed:
        return flags
    t = torch.tensor(flags, dtype=torch.int32, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def same_weights_everywhere(model: torch.nn.Module, ctx: Context) -> tuple[bool, str]:
    """Whether every rank holds bit-identical weights, and this rank's digest."""
    digest = weights_digest(model)
    if not ctx.distributed:
        return True, digest
    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int32, device=ctx.device)
    gathered = [torch.empty_like(mine) for _ in range(ctx.world)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, mine) for g in gathered), digest
