"""Training checkpoints: what they hold (:class:`TrainState`), written atomically, read without unpickling code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.files import load_torch, save_torch
from ..network.weights import model_metadata
from .schedule import Schedule

# The parts of a TrainState that are live objects; a checkpoint holds their state dicts (the schedule's as its
# ``plateau`` and ``decays`` entries, the names every checkpoint has used).
LIVE = ("model", "optimizer", "schedule", "scaler")
SCHEDULE = ["plateau", "decays"]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


@dataclass
class TrainState:
    """Everything a training checkpoint holds, and nothing else: the model, optimizer, learning-rate schedule and
    gradient scaler (as state dicts), where the run is, what it has seen, the random state, and what the run is (its
    settings, data statistics, classes and crop). A run resumed from it continues bit for bit."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    config: dict[str, Any]
    stats: dict[str, Any]
    classes: list[str]
    crop: int
    epoch: int = 0  # the epoch in progress (0-based); epochs before it are finished
    step: int = 0  # optimizer steps done in that epoch
    global_step: int = 0
    best_acc: float = -1.0
    history: list[dict[str, float]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        model = unwrap(self.model)
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in LIVE}
        out.update(optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(), **self.schedule.state_dict())
        device = next(model.parameters()).device
        out.update(
            model=model.state_dict(),
            meta=model_metadata(model),
            rng_cpu=torch.get_rng_state(),
            rng_cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )
        return out

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        needed = [*(f.name for f in fields(self) if f.name != "schedule"), *SCHEDULE, "rng_cpu"]
        missing = [name for name in needed if name not in saved]
        if missing:
            raise ValueError(f"the checkpoint lacks {', '.join(missing)}: it was not written by this vggnet's trainer")
        unwrap(self.model).load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        self.schedule.load_state_dict({name: saved[name] for name in SCHEDULE})
        for f in fields(self):
            if f.name not in LIVE:
                setattr(self, f.name, saved[f.name])
        torch.set_rng_state(saved["rng_cpu"])
        device = next(unwrap(self.model).parameters()).device
        if device.type == "cuda" and saved.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(saved["rng_cuda"], device)

    def save(self, path: str | os.PathLike) -> Path:
        return save_checkpoint(self.state_dict(), path)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` via a temporary file, fsync and rename."""
    return save_torch(state, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; pickled code is refused (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        state = load_torch(path, "PyTorch checkpoint")
    except ValueError as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a vggnet training checkpoint")
    return state
