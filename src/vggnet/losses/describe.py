"""How a metric computes, as a paper would print it: :class:`Description`, a dict with a readable string form."""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from ..version import __version__

ORDER = (
    "metric",
    "definition",
    "reference",
    "version",
    "vggnet",
    "trunk",
    "weights",
    "weights_sha256",
    "taps",
    "pooling",
    "input_range",
    "normalization",
    "channels",
    "volumes",
    "patches",
    "reduction",
    "precision",
)


class Description(dict):
    """``describe()``'s answer: plain JSON-friendly values by key (``metric``, ``version``, ``weights``,
    ``weights_sha256``, ``taps``, ``input_range``, ``normalization``, ``channels`` ...); ``str()`` gives one
    ``key: value`` line each, in a fixed order, for a paper's appendix or a log."""

    def __str__(self) -> str:
        keys = [k for k in ORDER if k in self] + [k for k in self if k not in ORDER]
        return "\n".join(f"{key}: {_text(self[key])}" for key in keys)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def tensor_digest(*tensors: torch.Tensor) -> str:
    """The first 12 hex digits of the sha256 of tensors' float32 values, in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def base_description(metric: str, version: str, definition: str, reference: str) -> Description:
    return Description(metric=metric, definition=definition, reference=reference, version=version, vggnet=__version__)
