"""PyTorch state dicts of the classic VGG ports, in layouts other than torchvision's.

- jcjohnson's port of the authors' Caffe models (``vgg16-00b39a1b.pth``, ``vgg19-d01eb7cb.pth``): torchvision's
  trunk, but a classifier that begins with dropout, so fc6, fc7, fc8 are ``classifier.1``, ``.4``, ``.6``.
- Dicts keyed by the Caffe names themselves (``conv1_1.weight`` ... ``fc8.bias``; Gatys's ``vgg_conv.pth`` and
  the pytorch-mcn conversions), fc6 as a linear layer or as a 7 x 7 convolution.

Both hold the authors' Caffe weights, which take BGR images in 0-255 minus the mean pixel: that is assumed, and
said, since a state dict cannot say it (``--normalize`` says otherwise).
"""

from __future__ import annotations

import re

import torch

from .net import CONV_NAME, HEAD, ForeignNet, FoundLayer, mean_pixel_for

JCJOHNSON_HEAD = {"classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}
CAFFE_KEY = re.compile(r"(?:.*\.)?(conv\d+_\d+|fc[678])\.(weight|bias)$")


def recognise(state: dict[str, torch.Tensor], source: str) -> ForeignNet | None:
    """The net in a state dict of one of the layouts above; None for any other (torchvision's, timm's ...)."""
    keys = set(state)
    if {f"{k}.weight" for k in JCJOHNSON_HEAD} <= keys and "classifier.0.weight" not in keys:
        return _jcjohnson(state, source)
    if keys and all(CAFFE_KEY.match(k) for k in keys):
        return _caffe_named(state)
    return None


def _jcjohnson(state: dict[str, torch.Tensor], source: str) -> ForeignNet:
    convs = sorted(int(k.split(".")[1]) for k in state if re.fullmatch(r"features\.\d+\.weight", k))
    if not convs or any(state[f"features.{i}.weight"].dim() != 4 for i in convs):
        raise ValueError(f"{source} has jcjohnson's classifier keys but no convolutions in features.N")
    layers: list[FoundLayer] = []
    for i, nxt in zip(convs, [*convs[1:], None]):
        layers.append(
            FoundLayer("conv", f"features.{i}", state[f"features.{i}.weight"], state.get(f"features.{i}.bias"))
        )
        gap = None if nxt is None else nxt - i
        if gap not in (2, 3, None):  # conv, ReLU (, pool): a longer gap is no VGG's; the last conv ends with pool5
            raise ValueError(f"{source}: features.{i} and features.{nxt} are no VGG's neighbours")
        if gap in (3, None):
            layers.append(FoundLayer("pool", f"features.{i + 2}"))
    for key in JCJOHNSON_HEAD:
        layers.append(FoundLayer("fc", key, state[f"{key}.weight"], state.get(f"{key}.bias")))
    classes = state["classifier.6.weight"].shape[0]
    return ForeignNet(
        format="jcjohnson's PyTorch port of the Caffe models (classifier.1/.4/.6)",
        layers=layers,
        normalization=mean_pixel_for(classes, "assumed for jcjohnson's Caffe port"),
        ceil_mode=False,
        notes=[
            "BGR 0-255 minus the mean pixel assumed (jcjohnson's port keeps Caffe's input); --normalize says otherwise"
        ],
    )


def _caffe_named(state: dict[str, torch.Tensor]) -> ForeignNet:
    by_name: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name, part = CAFFE_KEY.match(key).groups()
        by_name.setdefault(name, {})[part] = value
    convs = sorted(
        (n for n in by_name if n.startswith("conv")), key=lambda n: tuple(map(int, CONV_NAME.match(n).groups()))
    )
    layers = [FoundLayer("conv", n, by_name[n].get("weight"), by_name[n].get("bias"), name=n) for n in convs]
    layers += [
        FoundLayer("fc", n, by_name[n].get("weight"), by_name[n].get("bias"), name=n) for n in HEAD if n in by_name
    ]
    missing = [layer.source for layer in layers if layer.weight is None]
    if missing:
        raise ValueError(f"the state dict has biases without weights: {', '.join(missing)}")
    classes = by_name["fc8"]["weight"].shape[0] if "fc8" in by_name else None
    return ForeignNet(
        format="a state dict keyed by Caffe layer names (conv1_1.weight ... fc8.bias)",
        layers=layers,
        normalization=mean_pixel_for(classes, "assumed for a Caffe port"),
        ceil_mode=False,
        notes=["BGR 0-255 minus the mean pixel assumed (a port of Caffe weights); --normalize says otherwise"],
        named=True,
    )
