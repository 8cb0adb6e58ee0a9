"""What a reproduction's runs saved on each split (``val.safetensors``, ``test.safetensors``: soft-max posteriors per
protocol and Q, the labels, the run's history and settings), read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .plan import RunSpec, Settings

SPLITS = ("val", "test")  # the held-out training images that decide, the test images that are reported


class DamagedFile(ValueError):
    """A run's result file that does not read (truncated by a full disk, a copy cut short, edited)."""


def split_keys(folder: Path, split: str) -> set[str]:
    """The posteriors a run's file for ``split`` holds (none where there is no file); :class:`DamagedFile` where
    it does not read."""
    return set(read_split(folder, split, tensors=False) or {})


def read_split(folder: Path, split: str, tensors: bool = True) -> dict[str, Any] | None:
    """A run's saved posteriors on ``split`` (``{"tensors": ..., "meta": ...}``), or None where there are none yet;
    ``tensors=False``: only the names of the tensors it holds. A file that does not read is a :class:`DamagedFile`
    naming it: a report never comes from one, and running the reproduction again evaluates the run anew."""
    from safetensors import safe_open

    path = folder / f"{split}.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if not tensors:
                return dict.fromkeys(f.keys())  # noqa: SIM118 (safe_open is not a dict)
            found = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    except Exception as err:  # safetensors' SafetensorError, a torn header, metadata that is not JSON
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DamagedFile(
            f"{path} does not read ({reason}); vggnet reproduce without --report-only evaluates the run again from its "
            "weights"
        ) from None
    if "labels" not in found:
        raise DamagedFile(f"{path} holds no labels: it is not a reproduction's result file")
    return {"tensors": found, "meta": meta}


def evaluated(settings: Settings, runs: list[RunSpec], split: str) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """Each run evaluated on ``split``, with its posteriors, labels and record."""
    for spec in runs:
        found = read_split(Path(settings.out) / spec.name, split)
        if found is not None:
            yield spec, found
