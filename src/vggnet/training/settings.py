"""A training run's settings (:class:`TrainConfig`) and the TOML recipes that fill them, shipped with the package."""

from __future__ import annotations

import os
import typing
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ..data.datasets import DATASETS, NORMALIZATIONS
from ..data.device import DECODERS
from ..settings import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, Range

SCHEDULES = ("plateau", "onecycle")
AMP_MODES = ("auto", "bf16", "fp16", "off")
# Settings that say how a run runs, not what it computes: the only ones a resumed run may change.
RUNTIME = ("epochs", "device", "workers", "progress", "max_steps", "strict", "compile", "save_every", "tensorboard",
           "log_every", "out", "resume", "decode", "val_every")  # fmt: skip


# The range of every numeric setting: checked by TrainConfig.check and, as they are parsed, by the command line.
RANGES: dict[str, Range] = {
    **dict.fromkeys(("epochs", "batch_size", "crop", "pool_size", "fc_width", "micro_batch", "subset", "max_steps",
                     "val_every", "scale"), AT_LEAST_ONE),
    **dict.fromkeys(("lr", "width", "pretrained_lr_scale", "log_every"), POSITIVE),
    **dict.fromkeys(("colour_shift", "weight_decay", "patience", "max_decays", "warmup_epochs", "save_every", "seed"),
                    NON_NEGATIVE),
    **dict.fromkeys(("momentum", "label_smoothing", "dropout"), FRACTION),
    "workers": Range(-1),
}  # fmt: skip


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the paper's (Sect. 3.1); recipes (``vggnet/recipes``) override them."""

    # model
    arch: str | list[int | str | list[int]] = "vgg11"
    batch_norm: bool | None = None
    width: float = 1.0
    pool_size: int = 7
    fc_width: int = 4096
    ceil_mode: bool = False
    dropout: float = 0.5
    init: str = "normal"
    preinit: str | None = None
    weights: str | None = None
    # fine-tuning
    freeze: str = "none"
    pretrained_lr_scale: float = 1.0
    # data
    dataset: str | None = None
    data: str | None = None
    subset: int | None = None
    scale: list[int] | None = None  # None: 256 for image folders, in-memory images at their own size
    crop: int = 224
    colour_shift: float = 0.1
    eigen: str = "imagenet"
    normalize: str = "auto"
    strict: bool = False
    workers: int = -1
    decode: str = "auto"
    val_flip: bool = False
    val_every: int = 1
    # optimisation
    epochs: int = 74
    batch_size: int = 256
    micro_batch: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "plateau"
    patience: int = 2
    max_decays: int = 3
    warmup_epochs: float = 0.0
    # running
    out: str = "runs/vggnet"
    resume: bool = False
    device: str = "auto"
    seed: int = 0
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    save_every: int = 0
    max_steps: int | None = None
    progress: bool = True
    log_every: float = 30.0
    tensorboard: bool = True

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting of the wrong type or out of range."""
        _check_types(self)
        for name, value, allowed in (
            ("schedule", self.schedule, SCHEDULES),
            ("normalize", self.normalize, NORMALIZATIONS),
            ("amp", self.amp, AMP_MODES),
            ("eigen", self.eigen, ("imagenet", "dataset")),
            ("dataset", self.dataset, (None, *DATASETS)),
            ("decode", self.decode, DECODERS),
        ):
            if value not in allowed:
                shown = ", ".join(str(a) for a in allowed if a is not None)
                raise ValueError(f"unknown {name} {value!r}; expected one of {shown}")
        if self.scale is not None and (
            not 1 <= len(self.scale) <= 2 or min(self.scale) < 1 or self.scale[-1] < self.scale[0]
        ):
            raise ValueError(f"scale is S or Smin Smax (Smin <= Smax, positive), got {self.scale}")
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            for v in value if isinstance(value, list) else [value]:
                allowed.check(name.replace("_", "-"), v)
        if self.schedule == "plateau" and self.val_every != 1:
            raise ValueError(f"the plateau schedule validates every epoch; val-every {self.val_every} needs onecycle")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is a file; give a folder for the run's outputs")

    def resumed_from(self, saved: dict[str, Any], given: set[str] | None = None) -> TrainConfig:
        """The configuration of a run resumed from a checkpoint's ``saved`` settings: what it computes comes from the
        checkpoint; only how it runs (``RUNTIME``) comes from here. A setting in ``given`` (default: every setting
        that differs from its default) that would change the run is an error, not silently ignored."""
        known = {f.name for f in fields(TrainConfig)}
        restored = TrainConfig(**{k: v for k, v in saved.items() if k in known})
        defaults = TrainConfig()
        if given is None:
            given = {f.name for f in fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}
        clashes = [
            f"--{name.replace('_', '-')} {getattr(self, name)!r} (the run has {getattr(restored, name)!r})"
            for name in sorted(given - set(RUNTIME))
            if name in known and getattr(self, name) != getattr(restored, name)
        ]
        if clashes:
            raise ValueError(
                "a resumed run keeps its own settings; these would change it: " + "; ".join(clashes) + ". Drop them, "
                "or start a new run with another --out (--weights OUT/model.safetensors continues from its weights)"
            )
        for name in RUNTIME:
            setattr(restored, name, getattr(self, name))
        return restored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_types(cfg: TrainConfig) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        value, kind = getattr(cfg, f.name), hints[f.name]
        if not _is_instance(value, kind):
            raise ValueError(f"setting {f.name} = {value!r} is not {_type_name(kind)}")


def _is_instance(value: Any, kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return isinstance(value, list) and all(_is_instance(v, args[0]) for v in value)
    if args:  # X | None
        return any(_is_instance(value, a) for a in args)
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args and typing.get_origin(args[0]) is list:
        kind, args = args[0], list(typing.get_args(args[0]))
    if typing.get_origin(kind) is list:
        return f"a list of {names[args[0]].split(' ', 1)[1]}s"
    return names.get(args[0] if args else kind, str(kind)) + (
        " (or absent)" if type(None) in typing.get_args(kind) else ""
    )


def recipe_names() -> list[str]:
    """The recipes shipped with vggnet."""
    return sorted(
        p.name[: -len(".toml")] for p in resources.files("vggnet.recipes").iterdir() if p.name.endswith(".toml")
    )


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Settings from a TOML recipe (keys are :class:`TrainConfig` fields): a path, or the name of one shipped with
    vggnet (``"paper_s256"``, found with importlib.resources, so it works installed)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    text = str(path)
    file = Path(text)
    if file.is_file():
        data, where = file.read_bytes(), str(file)
    else:
        # A bare name, or recipes/NAME.toml as the README writes it, is one of the recipes shipped with vggnet.
        name = file.stem if file.suffix == ".toml" else file.name
        shipped = resources.files("vggnet.recipes") / f"{name}.toml"
        if file.parent not in (Path("."), Path("recipes")) or file.suffix not in ("", ".toml") or not shipped.is_file():
            raise ValueError(f"no such recipe: {text} (shipped with vggnet: {', '.join(recipe_names())})")
        data, where = shipped.read_bytes(), f"vggnet's {name}.toml"
    try:
        recipe = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"recipe {where} is not valid TOML: {err}") from None
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"recipe {where} has unknown settings: {', '.join(unknown)}")
    try:
        _check_types(TrainConfig(**recipe))
    except ValueError as err:
        raise ValueError(f"recipe {where}: {err}") from None
    return recipe
