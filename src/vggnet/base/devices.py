"""Which device a command runs on: ``auto`` (a GPU where there is one), ``cpu``, ``cuda`` or ``cuda:N``, refused
with a sentence where it cannot be had."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda or cuda:N")
    return device
