"""``vggnet stylize CONTENT STYLE --out picture.png``: Gatys et al.'s neural style transfer
(:func:`vggnet.losses.stylize.stylize`) from the command line, with a progress bar, the picture at intervals and
Gatys's normalised network made from a folder of images and saved (``--normalize-network FOLDER --save-network
FILE``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..base.normalization import NAMED_NORMALIZATIONS
from ..base.progress import Progress
from ..base.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, RUNTIME, ProgressSettings, Range, setting
from ..losses.stylize import GATYS_CONTENT, INITS, LOSS_FORMS, OPTIMIZERS, Step
from .command import Command, parsed

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


@dataclass
class StylizeSettings:
    """``vggnet stylize``: a picture with one image's content in another's style."""

    cli_text: ClassVar[str] = (
        "Neural style transfer (Gatys et al. 2016): a picture with CONTENT's layout in STYLE's textures and colours, "
        "its pixels optimised against VGG-19's features (the paper's taps, weights, average pooling and L-BFGS by "
        "default). Any VGG vggnet loads serves: the authors' VGG_ILSVRC_19_layers.caffemodel, MatConvNet's "
        "imagenet-vgg-verydeep-19.mat, torchvision's weights, or a network normalised as Gatys's "
        "(--normalize-network FOLDER --save-network FILE, then --weights FILE)."
    )

    out: str = setting("stylized.png", "the picture to write (.png, .jpg, .webp ...), atomically")
    content: str | None = setting(None, "the content image: the picture's layout (and its size)", positional=True)
    style: str | None = setting(None, "the style image (any size)", positional=True)
    arch: str = setting("vgg19", "the architecture of weights that do not say theirs (torchvision's)")
    normalize: str = setting(
        "auto",
        "the input the weights expect where their file does not say it (caffe: BGR 0-255 minus the mean pixel)",
        choices=("auto", *NAMED_NORMALIZATIONS),
    )
    weights: str = setting(
        "torchvision",
        "the loss network: 'torchvision' (its ImageNet weights for --arch, through torch's hub cache) or any file "
        "vggnet loads: VGG_ILSVRC_19_layers.caffemodel, imagenet-vgg-verydeep-19.mat, Keras, ONNX, a vggnet file",
        metavar="SOURCE",
    )
    content_layers: list[str] = setting(
        list(GATYS_CONTENT), "content taps by Caffe name, each NAME or NAME:WEIGHT (weight 1)", metavar="LAYER"
    )
    style_layers: list[str] = setting(
        STYLE_LAYERS, "style taps by Caffe name, each NAME or NAME:WEIGHT (1/n each, the paper's w_l)", metavar="LAYER"
    )
    content_weight: float = setting(1.0, "alpha, the content term's weight", NON_NEGATIVE)
    style_weight: float = setting(
        1e3,
        "beta, the style term's weight (the paper's alpha/beta: 1e-3 and 1e-4, on its normalised network)",
        NON_NEGATIVE,
    )
    tv_weight: float = setting(
        0.0, "total variation's weight (sum of squared neighbour differences, [0, 1])", NON_NEGATIVE
    )
    losses: str = setting(
        "gatys", "the terms' form: " + "; ".join(f"{k}: {v}" for k, v in LOSS_FORMS.items()), choices=tuple(LOSS_FORMS)
    )
    pooling: str = setting(
        "avg", "avg: average pooling in place of max (the paper's); max: the network's own", choices=("avg", "max")
    )
    optimizer: str = setting("lbfgs", "lbfgs (the paper's) or adam", choices=tuple(OPTIMIZERS))
    steps: int = setting(500, "optimisation steps (an L-BFGS iteration or an Adam step each)", AT_LEAST_ONE)
    lr: float | None = setting(None, "learning rate (default: 1 for lbfgs, 0.02 for adam; pixels on [0, 1])", POSITIVE)
    init: str = setting(
        "content", "the picture's start: " + "; ".join(f"{k}: {v}" for k, v in INITS.items()), choices=tuple(INITS)
    )
    size: int = setting(512, "the picture's longer side in pixels (the content image resized)", Range(16))
    style_scale: float = setting(1.0, "the style image's longer side as a share of --size", POSITIVE)
    seed: int = setting(0, "seed of the noise start", NON_NEGATIVE)
    save_every: int = setting(
        0, "write the picture every N steps beside --out (picture_0100.png ...); 0: never", NON_NEGATIVE
    )
    normalize_network: str | None = setting(
        None,
        "a folder of images: first rescale every filter so its mean activation over them (each at --size) is 1, "
        "the next layer compensated (Gatys's normalised network)",
        metavar="FOLDER",
    )
    save_network: str | None = setting(
        None,
        "with --normalize-network: write the normalised network (.safetensors), for --weights later",
        metavar="FILE",
    )
    device: str = setting("auto", "auto (cuda where there is one), cpu, cuda or cuda:N", role=RUNTIME)

    def check(self) -> None:
        """Bad combinations and names, before anything is read or loaded."""
        from ..losses.stylize import picture_format

        if self.content is None and self.normalize_network is None:
            raise ValueError("give the two images: vggnet stylize CONTENT STYLE --out picture.png")
        if self.content is not None and self.style is None:
            raise ValueError(f"give a style image after {self.content}: vggnet stylize CONTENT STYLE")
        if self.save_network is not None and self.normalize_network is None:
            raise ValueError("--save-network writes the network --normalize-network FOLDER makes; give both")
        if self.save_network is not None and not self.save_network.endswith(".safetensors"):
            raise ValueError(f"--save-network must end in .safetensors, got {self.save_network}")
        if self.content is None and self.save_network is None:
            raise ValueError("--normalize-network without images makes a network: give --save-network FILE to keep it")
        if self.content is not None:
            picture_format(self.out)
            if os.path.isdir(self.out):
                raise ValueError(f"--out {self.out} is a folder; give the picture's file name, e.g. picture.png")


def layer_spec(specs: list[str], flag: str, default: float | None) -> dict[str, float]:
    """``["relu1_1:0.5", "relu2_1"]`` as weights by Caffe name (a name alone: ``default``, else 1/n)."""
    found: dict[str, float] = {}
    for spec in specs:
        name, colon, text = spec.partition(":")
        try:
            weight = float(text) if colon else (default if default is not None else 1 / len(specs))
        except ValueError:
            raise ValueError(f"{flag} {spec}: the weight after ':' must be a number") from None
        if not name or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{flag} {spec}: give NAME or NAME:WEIGHT, a Caffe layer name and a finite weight >= 0")
        found[name] = weight
    return found


def load_network(s: StylizeSettings, names: list[str]) -> Any:
    """The loss network, its tap names checked against the architecture before any download."""
    from ..inference import load_model
    from ..losses.taps import FeatureTaps
    from ..network.model import build
    from ..network.weights import is_official_name

    if is_official_name(s.weights):
        with torch.device("meta"):
            FeatureTaps.check_names(build(s.arch), names)
    return load_model(s.weights, s.arch, arch_if_unknown=True, normalize=None if s.normalize == "auto" else s.normalize)


def normalized_network(s: StylizeSettings, loaded: Any) -> tuple[Any, str]:
    """Gatys's normalised network from --normalize-network's folder, written to --save-network where given."""
    from ..losses.stylize import normalized_on_folder
    from ..network.weights import save_weights

    net, count, skipped = normalized_on_folder(loaded, s.normalize_network, s.size, s.pooling)
    if skipped:
        print(f"note: {len(skipped)} files did not read and were skipped ({skipped[0]})", file=sys.stderr)
    said = f"normalised on {count} images under {s.normalize_network}"
    if s.save_network is not None:
        source = getattr(loaded, "source", s.weights)
        meta = {"normalized": json.dumps({"from": str(source), "images": count, "folder": s.normalize_network})}
        path = save_weights(net, s.save_network, meta, trunk_only=not getattr(loaded, "has_head", True))
        said += f"; wrote {path}"
    return net, said


def interval_path(out: str, step: int, steps: int) -> Path:
    """``picture_0100.png`` beside ``picture.png``: the picture after ``step`` steps."""
    path = Path(out)
    return path.with_name(f"{path.stem}_{step:0{max(4, len(str(steps)))}d}{path.suffix}")


def run_stylize(s: StylizeSettings) -> list[str]:
    """The command: the lines it prints (what it wrote)."""
    from ..base.devices import pick_device
    from ..losses.stylize import NeuralStyle, read_picture

    s.check()
    content_layers = layer_spec(s.content_layers, "--content-layers", 1.0)
    style_layers = layer_spec(s.style_layers, "--style-layers", None)
    images = None
    if s.content is not None:  # the images read before a network is loaded or downloaded
        images = read_picture(s.content, s.size), read_picture(s.style, max(1, round(s.size * s.style_scale)))
    device = pick_device(s.device)
    model = load_network(s, [*content_layers, *style_layers])
    lines = []
    if s.normalize_network is not None:
        model, said = normalized_network(s, model)
        lines.append(said)
    if images is None:
        return lines
    weights = {"content_weight": s.content_weight, "style_weight": s.style_weight, "tv_weight": s.tv_weight}
    objective = NeuralStyle(
        model, content_layers=content_layers, style_layers=style_layers, pooling=s.pooling, losses=s.losses, **weights
    )
    lines.append(transfer(s, *images, objective, device))
    return lines


def transfer(s: StylizeSettings, content: torch.Tensor, style: torch.Tensor, objective: Any, device: Any) -> str:
    """The optimisation with its bar and the pictures at intervals; the picture written; a line saying so."""
    from ..losses.stylize import save_picture, stylize

    bar, started = Progress(s.steps, desc="stylize", unit="step"), time.monotonic()

    def each(step: Step) -> None:
        bar.update(step.step, f"loss {step.loss:.4g}")
        if s.save_every and step.step % s.save_every == 0:
            save_picture(step.picture, interval_path(s.out, step.step, step.steps))

    options = {"optimizer": s.optimizer, "steps": s.steps, "lr": s.lr, "init": s.init, "seed": s.seed}
    try:
        picture = stylize(content, style, objective, device=device, callback=each, **options)
    finally:
        bar.close()
    path = save_picture(picture, s.out)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in objective.terms.items())
    h, w = picture.shape[-2:]
    return f"wrote {path} ({w}x{h}, {s.steps} {s.optimizer} steps in {time.monotonic() - started:.1f} s; {terms})"


def cmd_stylize(args: argparse.Namespace) -> int:
    print("\n".join(run_stylize(parsed(StylizeSettings, args))))
    return 0


COMMAND = Command(
    "stylize",
    "neural style transfer (Gatys et al.): CONTENT in STYLE's style, on any VGG-19 vggnet loads",
    cmd_stylize,
    (StylizeSettings, ProgressSettings),
)
