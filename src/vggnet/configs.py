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
# other units has alpha rescaled to match (vggnet.model.CaffeLRN). PyTorch's LocalResponseNorm divides alpha by n,
# so it is given alpha * n.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0
# Caffe pixel levels per unit of vggnet's default input: [0, 1] images minus the mean (the paper's normalisation).
PIXEL_SCALE = 255.0


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
