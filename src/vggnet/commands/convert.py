"""``vggnet convert`` and ``vggnet info FILE``: what a weights file of any origin holds, and the same net as a
vggnet file.

The report says the file's format, the network it holds (configuration, parameters, how its pools round), its
classes, the input its weights expect and what vggnet makes of it, and every layer with weights: the file's name,
the Caffe name and the module in torchvision's layout. A converted file takes RGB images on [0, 1] like every
vggnet file: weights for BGR 0-255 images are stored with conv1_1's input channels reversed and the mean pixel and
scale in the normalisation, so the same state dict also works in torchvision's VGG with that normalisation.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

from ..base.files import folder_lock
from ..base.settings import setting
from ..formats import WeightsFile, format_lines
from ..inference.loading import Loaded, load_found
from ..network.weights import read_weights, save_weights
from .command import Command, parsed


@dataclass
class ConvertSettings:
    """``vggnet convert``: any weights file vggnet reads to a vggnet ``.safetensors`` file."""

    cli_text: ClassVar[str] = "\n".join(
        [
            "Read a VGG file of any origin (Caffe, Keras, ONNX, MatConvNet, PyTorch ports, torchvision, timm) and "
            "write it as a vggnet file for RGB images on [0, 1], saying its format, network, classes, input and every "
            "layer mapped. The file is written beside FILE, under FILE's name with .safetensors, unless --out says "
            "where; an existing file is replaced only with --force.",
            "",
            "Formats it reads (by suffix):",
            *format_lines(),
        ]
    )

    source: str | None = setting(None, "the file (any format below), or a URL", positional=True, metavar="FILE")
    out: str | None = setting(
        None, "the vggnet file to write (.safetensors; default: FILE's folder and name, with .safetensors)"
    )
    force: bool = setting(False, "replace --out where it exists")
    arch: str | None = setting(None, "the architecture of a torchvision-layout file, which cannot say it (vgg16 ...)")
    normalize: str = setting(
        "auto",
        "the input the weights expect where the file does not say it (caffe, vggface, imagenet, tf); auto: what the "
        "file says or implies",
        choices=("auto", "caffe", "vggface", "imagenet", "tf"),
    )
    classes: str | None = setting(
        None, "a text file of class names, one per line (else the file's own, or a names.txt beside it)"
    )


def open_file(source: str, arch: str | None = None, normalize: str | None = None, classes: str | None = None):
    """The file as read and the model made of it."""
    found = read_weights(source, arch, normalize, classes)
    return found, load_found(found, arch, arch_if_unknown=True)


def report(found: WeightsFile, loaded: Loaded) -> str:
    """What the file holds and how vggnet reads it, in lines."""
    model = loaded.model
    buffers = ("running_mean", "running_var", "num_batches_tracked")  # BN's statistics: state, not parameters
    params = sum(v.numel() for k, v in found.state.items() if not k.endswith(buffers))
    pools = "rounded up (Caffe's)" if model.ceil_mode else "rounded down (torchvision's)"
    lines = [
        f"file: {found.source}",
        f"format: {found.format}",
        f"network: {model.describe()}; {params:,} parameters; pooled sizes {pools}"
        + ("; the convolutional trunk only (no fc6-fc8)" if found.trunk_only else ""),
        f"classes: {_classes(found, loaded)}",
        f"input: {found.normalization or 'not recorded: ImageNet mean and std assumed (--normalize to say)'}",
    ]
    norm = found.normalization
    if norm is not None and (norm.channel_order, norm.pixel_range) != ("RGB", 1.0):
        reversed_ = "conv1_1's input channels reversed, " if norm.channel_order == "BGR" else ""
        lines.append(
            f"  as vggnet takes it, RGB on [0, 1]: {reversed_}mean {_round(loaded.mean)}, std {_round(loaded.std)}"
        )
    lines.append(f"crop: {loaded.crop}" + (f", test scale {loaded.scale}" if loaded.scale else ""))
    lines += [f"note: {note}" for note in found.notes]
    lines += _layer_lines(found, loaded)
    return "\n".join(lines)


def _classes(found: WeightsFile, loaded: Loaded) -> str:
    if found.trunk_only:
        return "none (no classifier)"
    count = len(loaded.classes)
    if found.classes:
        return f"{count:,} named ({', '.join(loaded.classes[:3])}{', ...' * (count > 3)})"
    if _imagenet(found, loaded):
        return "1,000, ImageNet's (in the order torchvision, Caffe and Keras share)"
    return f"{count:,}, unnamed (class 0 ...; --classes FILE names them)"


def _imagenet(found: WeightsFile, loaded: Loaded) -> bool:
    return not found.trunk_only and len(loaded.classes) == 1000


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _layer_lines(found: WeightsFile, loaded: Loaded) -> list[str]:
    rows = [(row.source, row.name, row.module, row.shape) for row in found.mapping]
    if not rows:  # a file in torchvision's layout: its keys are the modules
        model = loaded.model
        for name in model.layer_names:
            key = _module_path(model, name)
            if key is not None and f"{key}.weight" in found.state:
                rows.append((f"{key}.weight", name, key, tuple(found.state[f"{key}.weight"].shape)))
    width = max((len(r[0]) for r in rows), default=0)
    lines = [f"layers with weights ({len(rows)}):"]
    lines += [f"  {src:<{width}}  {name:<8} -> {key:<13} {'x'.join(map(str, shape))}" for src, name, key, shape in rows]
    return lines


def _module_path(model, name: str) -> str | None:
    module = model.layer(name)
    if not any(True for _ in module.parameters(recurse=False)):
        return None
    return next(path for path, m in model.named_modules() if m is module)


def target(settings: ConvertSettings) -> Path:
    """Where the vggnet file goes: ``--out``, else beside the file under its own name (``vgg16.caffemodel`` ->
    ``vgg16.safetensors``; a ``.safetensors`` file -> ``NAME.vggnet.safetensors``; a URL's file, or the
    architecture of a name such as ``torchvision``, in the current folder). ``ValueError`` where it exists and
    ``--force`` was not given: a file is never replaced unasked."""
    if settings.source is None:
        raise ValueError("give the file to convert: vggnet convert FILE (--out OUT.safetensors)")
    if settings.out is not None:
        out = Path(settings.out)
        if out.suffix != ".safetensors":
            raise ValueError(f"--out must end in .safetensors, got {settings.out}")
    elif "://" in settings.source:  # a URL: its file's name, here
        out = Path(Path(urlparse(settings.source).path).stem + ".safetensors")
    elif not Path(settings.source).suffix:  # a name (torchvision): the architecture's, here
        out = Path(f"{settings.arch or settings.source}.safetensors")
    else:
        source = Path(settings.source)
        own = ".vggnet.safetensors" if source.suffix == ".safetensors" else ".safetensors"
        out = source.parent / f"{source.stem}{own}"
    if out.exists() and not settings.force:
        raise ValueError(f"{out} exists; vggnet convert replaces a file only with --force (or give another --out)")
    return out


def convert(settings: ConvertSettings) -> tuple[str, str]:
    """Write ``settings.source`` as a vggnet file (:func:`target` says where); return the report and a line saying
    where."""
    out = target(settings)
    found, loaded = open_file(settings.source, settings.arch, settings.normalize, settings.classes)
    text = report(found, loaded)
    metadata = {
        **({"classes": json.dumps(loaded.classes)} if found.classes or _imagenet(found, loaded) else {}),
        "crop": json.dumps(loaded.crop),
        "mean": json.dumps(loaded.mean),
        "std": json.dumps(loaded.std),
        "converted_from": json.dumps({"file": found.source, "format": found.format, "input": str(found.normalization)}),
    }
    if loaded.scale:
        metadata["scale"] = json.dumps(loaded.scale)
    path = save_weights(loaded.model, out, metadata, trunk_only=found.trunk_only)
    return text, f"wrote {path}"


def cmd_convert(args: argparse.Namespace) -> int:
    s = parsed(ConvertSettings, args)
    with folder_lock(target(s), "weights file"):
        print("\n".join(convert(s)))
    return 0


COMMAND = Command(
    "convert",
    "any VGG file (Caffe, Keras, PyTorch ports, torchvision, timm) to a vggnet file, saying what it found",
    cmd_convert,
    (ConvertSettings,),
)
