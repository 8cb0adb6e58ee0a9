"""The six configurations of the paper's Table 1, written as data.

Notation (torchvision's, extended): an ``int`` is a 3x3 convolution of that width, ``"M"`` a 2x2 max-pool,
``(width, 1)`` a 1x1 convolution (config C) and ``"LRN"`` AlexNet's local response normalisation (config A-LRN).
"""

from __future__ import annotations

from typing import Union

Layer = Union[int, str, tuple[int, int]]

CONFIGS: dict[str, list[Layer]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# Common names of the configurations; "_bn" may be appended to any of them.
NAMES: dict[str, str] = {
    "vgg11": "A",
    "vgg11_lrn": "A-LRN",
    "vgg13": "B",
    "vgg16_conv1": "C",
    "vgg16": "D",
    "vgg19": "E",
}

# AlexNet's LRN (Krizhevsky et al. 2012): b = a / (k + alpha * sum(a^2))^beta over n channels. The constants hold for
# activations of images in Caffe's pixel units (0-255 minus the mean), as the paper's nets took them; a net fed in
# other units has alpha rescaled to match (vggnet.network.layers.CaffeLRN). PyTorch's LocalResponseNorm divides alpha
# by n, so it is given alpha * n.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0
# Caffe pixel levels per unit of vggnet's default input: [0, 1] images minus the mean (the paper's normalisation).
PIXEL_SCALE = 255.0

# The head's modules by Caffe name, in torchvision's layout (classifier.0 is fc6, classifier.6 is fc8).
HEAD_NAMES = ("fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8")


def trunk_names(config: list[Layer], batch_norm: bool = False) -> list[str]:
    """The Caffe name of each module of the trunk ``config`` builds, in order: ``conv1_1``, (``bn1_1``,)
    ``relu1_1``, ``norm1`` for an LRN, ``pool1`` ... The one place the trunk's layout is written down."""
    names: list[str] = []
    block, conv = 1, 0
    for item in config:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        elif item == "LRN":
            names.append(f"norm{block}")
        else:
            conv += 1
            tag = f"{block}_{conv}"
            names += [f"conv{tag}", *([f"bn{tag}"] if batch_norm else []), f"relu{tag}"]
    return names


def module_paths(config: list[Layer], batch_norm: bool = False) -> dict[str, str]:
    """Each layer with parameters, by Caffe name, to its module's path in torchvision's layout: ``conv1_1`` ->
    ``features.0``, ``fc6`` -> ``classifier.0`` (a state dict's keys are these paths plus ``.weight``, ``.bias``)."""
    names = trunk_names(config, batch_norm)
    paths = {name: f"features.{i}" for i, name in enumerate(names) if name.startswith(("conv", "bn"))}
    paths.update({name: f"classifier.{i}" for i, name in enumerate(HEAD_NAMES) if name.startswith("fc")})
    return paths


def resolve(name: str) -> tuple[str, bool]:
    """Map a paper letter or a common name (optionally ``_bn``) to ``(letter, batch_norm)``."""
    if name in CONFIGS:
        return name, False
    key = name.lower()
    batch_norm = key.endswith("_bn")
    if batch_norm:
        key = key[: -len("_bn")]
    if key in NAMES:
        return NAMES[key], batch_norm
    if key.upper() in CONFIGS:
        return key.upper(), batch_norm
    known = ", ".join([*CONFIGS, *NAMES, *(n + "_bn" for n in NAMES)])
    raise ValueError(f"unknown architecture {name!r}; expected one of: {known}, or a list of widths and 'M'")


def canonical_name(letter: str, batch_norm: bool) -> str:
    """The common name of a configuration, e.g. ``("D", True) -> "vgg16_bn"``."""
    base = {v: k for k, v in NAMES.items()}[letter]
    return base + ("_bn" if batch_norm else "")


def layer_kinds(config: list[Layer]) -> list[str]:
    """A configuration's layers without their widths: ``["3x3", "M", "1x1", "LRN", ...]``."""
    return [i if isinstance(i, str) else "1x1" if not isinstance(i, int) and i[1] == 1 else "3x3" for i in config]


def letter_of(config: list[Layer]) -> str | None:
    """The paper's letter of a configuration with Table 1's layers, whatever its widths (a narrowed net A is still
    net A); None for any other."""
    kinds = layer_kinds(list(config))
    return next((letter for letter, known in CONFIGS.items() if layer_kinds(known) == kinds), None)


def validate(config: list[Layer]) -> None:
    """Raise ``ValueError`` if a custom configuration list is not in the notation above."""
    if not isinstance(config, (list, tuple)) or not config:
        raise ValueError(f"a configuration must be a non-empty list of widths and 'M', got {config!r}")
    for item in config:
        ok = (
            (isinstance(item, int) and not isinstance(item, bool) and item > 0)
            or item in ("M", "LRN")
            or (
                isinstance(item, (tuple, list))
                and len(item) == 2
                and all(isinstance(v, int) and v > 0 for v in item)
                and item[1] in (1, 3)
            )
        )
        if not ok:
            raise ValueError(
                f"bad configuration entry {item!r}: expected a positive width, 'M', 'LRN' or (width, kernel 1|3)"
            )
    if not any(not isinstance(i, str) for i in config):
        raise ValueError("a configuration needs at least one convolution")
