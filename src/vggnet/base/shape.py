"""What shapes a VGG, defined once: :class:`ModelShape`'s fields are the keys a model's ``to_config`` writes, a
vggnet weights file records and ``from_config`` reads; :data:`OPTIONS` are the settings that, with an architecture's
name, give those shapes (the model's builder, training's flags, the reproduction's plan and checks on weights that
contradict them all read them here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _option(default: Any = dataclasses.MISSING) -> Any:
    """A field that is also a build option (a flag of ``vggnet train``, an argument of ``vggnet.build``)."""
    return field(default=default, metadata={"option": True})


@dataclass(frozen=True)
class ModelShape:
    """A VGG's shape: its layers (widths as built), classes, input channels and head, and what else rebuilding it
    needs. The first six are required of any file that says what net it holds."""

    config: list[Any]
    num_classes: int
    in_channels: int
    batch_norm: bool = _option()
    pool_size: int = _option()
    fc_width: int = _option()
    ceil_mode: bool = _option(False)
    dropout: float = 0.5
    arch: str | None = None
    input_scale: float | None = None


KEYS = tuple(f.name for f in dataclasses.fields(ModelShape))
REQUIRED = tuple(f.name for f in dataclasses.fields(ModelShape) if f.default is dataclasses.MISSING)
# With an architecture's name, what gives its shape: the width multiplier (folded into ``config`` once built) and
# the options among the fields.
OPTIONS = ("width", *(f.name for f in dataclasses.fields(ModelShape) if f.metadata.get("option")))


def shape_of(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The shape entries of ``meta`` (a file's metadata), or None where it lacks a required one."""
    if any(meta.get(k) is None for k in REQUIRED):
        return None
    return {k: meta[k] for k in KEYS if k in meta}


def options_of(settings: Any) -> dict[str, Any]:
    """The build options an object carries as attributes (a training configuration, a model)."""
    return {k: getattr(settings, k) for k in OPTIONS}
