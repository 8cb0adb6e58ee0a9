"""A training run's settings (:class:`TrainConfig`) and the TOML recipes that fill them, shipped with the package."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..base.classes import by_position_setting, class_map_setting
from ..base.settings import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    RUNTIME,
    Range,
    check_types,
    log_every_setting,
    names,
    progress_setting,
    validate,
)
from ..base.settings import setting as s
from ..data.dataset import DATASETS, NORMALIZATIONS
from ..data.device import DECODERS

SCHEDULES = ("plateau", "onecycle")
AMP_MODES = ("auto", "bf16", "fp16", "off")
HERE_ON_RESUME = {"out", "resume", "max_steps"}  # runtime settings a resumed run never takes from its checkpoint
FREEZE_HELP = "none (default), features (every convolution) or a layer name (conv4_3: it and all before it)"


@dataclass
class TrainConfig:
    """Every setting of a run, each with its help, range and role (:func:`vggnet.base.settings.setting`): ``vggnet
    train`` has one flag per field, recipes are checked against them, and a resumed run may change only the
    ``runtime`` ones. Defaults are the paper's (Sect. 3.1); recipes (``vggnet/recipes``) override them."""

    # model
    arch: str | list[int | str | list[int]] = s(
        "vgg11",
        "architecture: vgg11 ... vgg19_bn, vgg11_lrn, vgg16_conv1, a paper letter (vgg11 is net A), or a "
        'configuration list in JSON, e.g. \'[64, "M", 128, "M"]\'',
    )
    batch_norm: bool | None = s(None, "batch normalisation after every convolution (default: as the name says)")
    width: float = s(1.0, "multiplier on every convolution's width, for small experiments", POSITIVE)
    pool_size: int = s(7, "side of the average pool before fc6: 7 as in the paper, 1 for a compact head", AT_LEAST_ONE)
    fc_width: int = s(4096, "width of fc6 and fc7", AT_LEAST_ONE)
    ceil_mode: bool = s(
        False,
        "round pooled sizes up, as the authors' Caffe did (28 x 28 images pass five pools); default: down, as "
        "torchvision does",
    )
    dropout: float = s(0.5, "dropout after fc6 and fc7", FRACTION)
    init: str = s(
        "normal",
        "initialisation: normal (the paper's, std 0.01), xavier (Glorot), kaiming (torchvision's) or he (std "
        "sqrt(2 / fan-in) on every layer: keeps the signal's scale through ReLUs)",
        choices=("normal", "xavier", "kaiming", "he"),
    )
    preinit: str | None = s(None, "weights or checkpoint of a trained net A: copy its first four convolutions and FCs")
    weights: str | None = s(
        None,
        "start from these weights (fine-tuning): a file, URL or 'torchvision'; every layer that fits is loaded, fc8 "
        "keeps the rows of the data's classes where the weights name them, and is new for other classes; conv1_1 "
        "is adapted to another channel count",
    )
    # fine-tuning
    class_map: str | None = class_map_setting()
    classes_by_position: bool = by_position_setting()
    freeze: str = s("none", FREEZE_HELP)
    pretrained_lr_scale: float = s(1.0, "learning rate of the layers loaded from --weights, times --lr", POSITIVE)
    # data
    dataset: str | None = s(
        None,
        "fashion-mnist, fashion-mnist-scaled (its garments at many sizes and places on 64 x 64 canvases), folder "
        "(DIR/train/<class>/*, DIR/val/<class>/*) or synthetic (default: from --data)",
        choices=DATASETS,
    )
    data: str | None = s(None, "data folder: an ImageNet-style folder, or where Fashion-MNIST's idx files are")
    subset: int | None = s(None, "train on a balanced subset of this many images", AT_LEAST_ONE)
    val_split: int | None = s(
        None,
        "validate on this many training images held out (stratified, fixed by --seed): the plateau rule and best.pt "
        "then never see the test set (default: validate on the data's test split)",
        AT_LEAST_ONE,
    )
    scale: list[int] | None = s(
        None,
        "training scale S (smallest side after rescaling): one value, or Smin Smax for scale jittering (default 256 "
        "for image folders; in-memory images are used at their own size unless given)",
        AT_LEAST_ONE,
    )
    crop: int = s(224, "side of the random training crop", AT_LEAST_ONE)
    colour_shift: float = s(0.1, "std of AlexNet's PCA colour shift (0 turns it off)", NON_NEGATIVE)
    eigen: str = s(
        "imagenet",
        "colour-shift eigen-decomposition: imagenet (AlexNet's) or dataset (computed from training images)",
        choices=("imagenet", "dataset"),
    )
    normalize: str = s(
        "auto",
        "auto (the --weights' own normalisation, else the paper's), mean (subtract the training set's mean RGB), "
        "meanstd, imagenet (torchvision's), or the input of --weights whose file does not say it: caffe (BGR, 0-255, "
        "minus the mean pixel), vggface, tf ([-1, 1])",
        choices=NORMALIZATIONS,
    )
    strict: bool = s(False, "stop at the first bad image instead of skipping it with a warning", role=RUNTIME)
    workers: int = s(
        -1, "DataLoader worker processes for image folders (-1: cores - 1, at most 8)", Range(-1), role=RUNTIME
    )
    decode: str = s(
        "auto",
        "image folders: decode JPEGs and augment on the GPU (gpu) or in CPU workers (cpu); auto: gpu when training "
        "on CUDA",
        choices=DECODERS,
        role=RUNTIME,
    )
    val_flip: bool = s(False, "validate with each image and its mirror, posteriors averaged (the paper's practice)")
    val_every: int = s(
        1, "validate every this many epochs, and after the last (plateau needs 1)", AT_LEAST_ONE, role=RUNTIME
    )
    # optimisation
    epochs: int = s(74, "maximum number of epochs (the paper's 74)", AT_LEAST_ONE, role=RUNTIME)
    batch_size: int = s(256, "global batch size over all processes (the paper's 256)", AT_LEAST_ONE)
    micro_batch: int | None = s(
        None, "largest batch held in memory per process; gradients are accumulated up to --batch-size", AT_LEAST_ONE
    )
    lr: float = s(0.01, "initial learning rate", POSITIVE)
    momentum: float = s(0.9, "SGD momentum", FRACTION)
    nesterov: bool = s(False, "use Nesterov momentum")
    weight_decay: float = s(5e-4, "L2 weight decay", NON_NEGATIVE)
    label_smoothing: float = s(0.0, "label smoothing of the cross-entropy (the paper's 0)", FRACTION)
    schedule: str = s(
        "plateau",
        "plateau (divide the rate by 10 when validation accuracy stops improving, the paper's) or onecycle",
        choices=SCHEDULES,
    )
    patience: int = s(2, "plateau: epochs without improvement before the rate is divided by 10", NON_NEGATIVE)
    max_decays: int = s(3, "plateau: stop after this many decreases have run their course", NON_NEGATIVE)
    final_decay: int = s(
        0,
        "plateau: end with this many epochs at a tenth of the rate: where the rule has not divided the rate by then, "
        "it is divided this many epochs before the last (0: never forced)",
        NON_NEGATIVE,
    )
    warmup_epochs: float = s(
        0.0,
        "epochs of linear warm-up from a tenth of the rate (onecycle; plateau too, whose rule starts after it)",
        NON_NEGATIVE,
    )
    hold_at_chance: bool = s(
        False,
        "plateau: epochs whose validation error is at chance (not 5 points below it) do not count: the rate is "
        "never divided, nor the run ended early, while it has not left chance",
    )
    # running
    out: str = s("runs/vggnet", "output folder: checkpoints, metrics, curves, TensorBoard, final weights", role=RUNTIME)
    resume: bool = s(
        False, "continue the run saved in --out (model, optimizer, schedule, position, random state)", role=RUNTIME
    )
    device: str = s("auto", "auto, cpu, cuda or cuda:N", role=RUNTIME)
    seed: int = s(0, "random seed: data order, augmentation, initialisation and the validation split", NON_NEGATIVE)
    amp: str = s(
        "auto",
        "autocast: auto (bf16 where the hardware has it), bf16, fp16 (CUDA, with gradient scaling) or off",
        choices=AMP_MODES,
    )
    channels_last: bool = s(True, "NHWC memory layout (--no-channels-last turns it off)")
    compile: bool = s(False, "compile the model with torch.compile", role=RUNTIME)
    save_every: int = s(
        0, "also checkpoint every this many steps (0: at the end of each epoch only)", NON_NEGATIVE, role=RUNTIME
    )
    max_steps: int | None = s(
        None, "stop (and save) after this many optimizer steps in all", AT_LEAST_ONE, role=RUNTIME
    )
    progress: bool = progress_setting()
    log_every: float = log_every_setting()
    tensorboard: bool = s(True, "write TensorBoard event files", role=RUNTIME)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting of the wrong type, choice or range, or settings that
        contradict each other."""
        validate(self)
        if self.scale is not None and (not 1 <= len(self.scale) <= 2 or self.scale[-1] < self.scale[0]):
            raise ValueError(f"scale is S or Smin Smax (Smin <= Smax, positive), got {self.scale}")
        if self.schedule == "plateau" and self.val_every != 1:
            raise ValueError(f"the plateau schedule validates every epoch; val-every {self.val_every} needs onecycle")
        if self.schedule == "plateau" and self.final_decay and self.final_decay >= self.epochs:
            raise ValueError(f"final-decay {self.final_decay} must leave epochs before it (epochs {self.epochs})")
        if (self.class_map or self.classes_by_position) and not self.weights:
            raise ValueError(
                "--class-map and --classes-by-position match the data's classes to those of --weights (fine-tuning); "
                "give --weights, or leave them out"
            )
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is a file; give a folder for the run's outputs")

    def resumed_from(self, saved: dict[str, Any], given: set[str] | None = None) -> TrainConfig:
        """The configuration of a run resumed from a checkpoint's ``saved`` settings: what it computes comes from the
        checkpoint; how it runs (the ``runtime`` settings) comes from here where ``given`` names it (default: every
        setting that differs from its default), and otherwise from the run too, so that a run of ``--epochs 4``
        resumed without flags still ends after 4. ``out`` and ``resume`` always come from here, and so does
        ``max_steps``: a stop for this invocation, not the run's. A setting in ``given`` that would change what the
        run computes is an error, not silently ignored."""
        cls = type(self)
        known = set(names(cls))
        restored = cls(**{k: v for k, v in saved.items() if k in known})
        defaults = cls()
        runtime = set(names(cls, RUNTIME))
        if given is None:
            given = {n for n in known if getattr(self, n) != getattr(defaults, n)}
        clashes = [
            f"--{name.replace('_', '-')} {getattr(self, name)!r} (the run has {getattr(restored, name)!r})"
            for name in sorted(given - runtime)
            if name in known and getattr(self, name) != getattr(restored, name)
        ]
        if clashes:
            raise ValueError(
                "a resumed run keeps its own settings; these would change it: " + "; ".join(clashes) + ". Drop them, "
                "or start a new run with another --out (--weights OUT/model.safetensors continues from its weights)"
            )
        for name in runtime & (given | HERE_ON_RESUME):
            setattr(restored, name, getattr(self, name))
        return restored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recipe_names() -> list[str]:
    """The recipes shipped with vggnet."""
    return sorted(
        p.name[: -len(".toml")] for p in resources.files("vggnet.recipes").iterdir() if p.name.endswith(".toml")
    )


def load_recipe(path: str | os.PathLike, config: type = TrainConfig) -> dict[str, Any]:
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
    check_types(config, recipe, f"recipe {where}")
    try:
        validate(config(**recipe))
    except ValueError as err:
        raise ValueError(f"recipe {where}: {err}") from None
    return recipe
