"""What a file of another framework holds, in one shape, and how that becomes a vggnet network.

A reader hands over a :class:`ForeignNet`: the layers in the file's order (convolutions, pools, LRNs, fully
connected layers) with weights already in PyTorch's layout, and the input the weights expect. :func:`assemble`
turns it into a configuration in Table 1's notation, a state dict in torchvision's layout and one row per layer
mapped, refusing with a sentence what no VGG has. :class:`Declared` checks what a file declares (each tensor's
shape, the bytes behind it) before any reader reads the data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..base.configs import CONFIGS, Layer, canonical_name, layer_kinds, letter_of, module_paths, trunk_names
from ..base.normalization import NAMED_NORMALIZATIONS, Normalization

VGGFACE_CLASSES = 2622
CONV_NAME = re.compile(r"conv(\d+)_(\d+)$")
HEAD = ("fc6", "fc7", "fc8")
# What a file may declare, checked before its data is read: a small file that declares a huge tensor (a compressed
# HDF5 dataset, a zlib-compressed MATLAB variable, a protobuf shape) is a sentence, not gigabytes of memory.
FC6_VALUES = 25088 * 4096  # the paper's largest tensor: fc6 over pool5's 7 x 7 x 512
MAX_VALUES = 4 * FC6_VALUES  # fc6 over a 14 x 14 pool5 (448-pixel images), or fc8 of 100,000 classes
MAX_FILE_VALUES = 2 * MAX_VALUES  # all of a file's tensors together
MAX_WIDTH = 8192  # a 3x3 convolution's channels: 16 times the paper's widest
MAX_SIDE = 32  # a kernel's side: fc6 as a convolution over pool5's map (7 x 7 on 224-pixel images)
DEFLATE_MOST = 1032  # deflate's greatest ratio: no stream inflates to more bytes per byte stored
SMALL_BYTES = 1 << 20  # a tensor this small is read whatever its storage (zeros compress to almost nothing)


@dataclass
class FoundLayer:
    """One layer of a foreign file."""

    kind: str  # "conv", "fc", "pool" or "lrn"
    source: str  # the file's own name for it
    weight: torch.Tensor | None = None  # conv: O x I x kh x kw; fc: O x I, or O x C x p x p (fc6 as a convolution)
    bias: torch.Tensor | None = None
    name: str | None = None  # its Caffe name (conv1_1, fc6), where the file gives one
    bn: tuple[torch.Tensor, ...] | None = None  # a convolution's batch norm: weight, bias, running mean and variance


@dataclass
class ForeignNet:
    """A VGG as another framework's file holds it."""

    format: str
    layers: list[FoundLayer]
    normalization: Normalization
    ceil_mode: bool = False  # pooled sizes rounded up (Caffe's pools)
    classes: list[str] | None = None
    crop: int | None = None  # the input side the file's model was built for, where it says
    notes: list[str] = field(default_factory=list)
    named: bool = False  # the layers carry Caffe names (conv1_1 ... fc8), which say where each one goes


def mean_pixel_for(classes: int | None, origin: str) -> Normalization:
    """The input of weights converted from the authors' Caffe models: BGR 0-255 minus the mean pixel, VGG-Face's
    for its 2,622 identities, ImageNet's otherwise; ``origin`` says where the file comes from."""
    norm = NAMED_NORMALIZATIONS["vggface" if classes == VGGFACE_CLASSES else "caffe"]
    return replace(norm, source=f"{origin}: {norm.source.split(',')[0]}")


@dataclass
class Mapped:
    """One layer mapped: the file's name, the Caffe name, the module in torchvision's layout, the weight's shape."""

    source: str
    name: str
    module: str
    shape: tuple[int, ...]


@dataclass
class Assembled:
    """A foreign net as vggnet holds it."""

    config: list[Layer]
    state: dict[str, torch.Tensor]
    rows: list[Mapped]
    in_channels: int
    num_classes: int | None  # None: the file holds the convolutional trunk only
    pool_size: int
    fc_width: int
    batch_norm: bool = False

    @property
    def arch(self) -> str | None:
        letter = letter_of(self.config)
        return canonical_name(letter, False) if letter else None

    def model_config(self, ceil_mode: bool) -> dict[str, Any]:
        """What ``VGG.from_config`` builds this net from (a trunk-only file: the paper's head, to be trained)."""
        return {
            "config": self.config,
            "num_classes": self.num_classes or 1000,
            "in_channels": self.in_channels,
            "batch_norm": self.batch_norm,
            "pool_size": self.pool_size,
            "fc_width": self.fc_width,
            "arch": self.arch,
            "ceil_mode": ceil_mode,
        }


def assemble(net: ForeignNet, source: str) -> Assembled:
    """The configuration, state dict and mapping of ``net``; ``ValueError`` naming what does not fit a VGG."""
    trunk, head = (_split_named if net.named else _split)(net.layers, source)
    config = _config(trunk, net.named, source)
    convs = [layer for layer in trunk if layer.kind == "conv"]
    in_channels = _check_chain(convs, source)
    batch_norm = _batch_norm(convs, source)
    paths = module_paths(config, batch_norm)
    names = [n for n in trunk_names(config) if n.startswith("conv")]
    state: dict[str, torch.Tensor] = {}
    rows: list[Mapped] = []
    for name, layer in zip(names, convs):
        _put(state, rows, layer, name, paths[name], layer.weight)
        if batch_norm:
            _put_bn(state, rows, layer, f"bn{name[4:]}", paths[f"bn{name[4:]}"])
    num_classes, pool, width = None, 7, 4096
    if head:
        pool, fcs = _head(head, convs[-1].weight.shape[0], source)
        for name, (layer, weight) in zip(HEAD, fcs):
            _put(state, rows, layer, name, paths[name], weight)
        width, num_classes = fcs[0][1].shape[0], fcs[2][1].shape[0]
    if net.classes is not None and num_classes is not None and len(net.classes) != num_classes:
        raise ValueError(f"{source} names {len(net.classes):,} classes but its fc8 holds {num_classes:,}")
    return Assembled(config, state, rows, in_channels, num_classes, pool, width, batch_norm)


def _batch_norm(convs: list[FoundLayer], source: str) -> bool:
    """Whether the trunk has a batch norm after every convolution (a BN net), none (a plain one), or some: refused."""
    found = [layer.bn is not None for layer in convs]
    if any(found) and not all(found):
        missing = ", ".join(layer.source for layer in convs if layer.bn is None)
        raise ValueError(f"{source}: a batch norm follows some convolutions and not {missing}; a VGG has one or none")
    return all(found) and bool(found)


def _put_bn(state: dict[str, torch.Tensor], rows: list[Mapped], layer: FoundLayer, name: str, path: str) -> None:
    weight, bias, mean, var = (t.float().reshape(-1).contiguous() for t in layer.bn)
    state.update({f"{path}.weight": weight, f"{path}.bias": bias, f"{path}.running_mean": mean})
    state.update({f"{path}.running_var": var, f"{path}.num_batches_tracked": torch.tensor(0)})
    rows.append(Mapped(f"{layer.source} (batch norm)", name, path, tuple(weight.shape)))


def _put(
    state: dict[str, torch.Tensor], rows: list[Mapped], layer: FoundLayer, name: str, path: str, weight: torch.Tensor
) -> None:
    bias = layer.bias if layer.bias is not None else torch.zeros(weight.shape[0])
    state[f"{path}.weight"], state[f"{path}.bias"] = weight.float().contiguous(), bias.float().reshape(-1)
    rows.append(Mapped(layer.source, name, path, tuple(weight.shape)))


def _split(layers: list[FoundLayer], source: str) -> tuple[list[FoundLayer], list[FoundLayer]]:
    """Trunk and head of a file whose layers come in order without Caffe names: the trunk ends at the last pool;
    where the file has no pools (weights alone), at the end of the longest Table 1 trunk its convolutions begin
    with."""
    pools = [i for i, layer in enumerate(layers) if layer.kind == "pool"]
    if pools:
        trunk, rest = layers[: pools[-1] + 1], layers[pools[-1] + 1 :]
    else:
        convs = [layer for layer in layers if layer.kind == "conv"]
        letter = _table1_prefix(convs, source)
        placed = iter(convs)
        trunk = [FoundLayer("pool", "(placed as in Table 1)") if i == "M" else next(placed) for i in CONFIGS[letter]]
        n = len(trunk) - CONFIGS[letter].count("M")
        rest = [layer for layer in layers if layer.kind in ("conv", "fc")][n:]
    misplaced = [layer.source for layer in trunk if layer.kind == "fc"]
    if misplaced:
        raise ValueError(f"{source} has fully connected layers between its convolutions: {', '.join(misplaced)}")
    return trunk, [layer for layer in rest if layer.kind in ("conv", "fc")]


def _table1_prefix(convs: list[FoundLayer], source: str) -> str:
    """The letter of the deepest configuration of Table 1 whose convolutions ``convs`` begin with."""
    kinds = [_kind(layer, source, strict=False) for layer in convs]
    for letter in sorted(CONFIGS, key=lambda k: -len(CONFIGS[k])):
        wanted = [k for k in layer_kinds(CONFIGS[letter]) if k not in ("M", "LRN")]
        if "LRN" not in CONFIGS[letter] and kinds[: len(wanted)] == wanted:
            return letter
    raise ValueError(
        f"{source}'s {len(convs)} convolutions ({', '.join(kinds[:20])}) begin none of Table 1's configurations, "
        "and the file does not say where its pools are"
    )


def _split_named(layers: list[FoundLayer], source: str) -> tuple[list[FoundLayer], list[FoundLayer]]:
    """Trunk and head of a file whose layers carry Caffe names: conv1_1 ... conv5_x, norm1, fc6 ... fc8."""
    trunk = [layer for layer in layers if layer.kind in ("conv", "lrn")]
    head = [layer for layer in layers if layer.kind == "fc"]
    if [layer.name for layer in head] not in ([], list(HEAD)):
        raise ValueError(
            f"{source} has fully connected layers {', '.join(str(layer.name) for layer in head)}; a VGG's head is "
            "fc6, fc7 and fc8 in that order (or none, for the trunk alone)"
        )
    return trunk, head


def _config(trunk: list[FoundLayer], named: bool, source: str) -> list[Layer]:
    config: list[Layer] = []
    block = 1
    for layer in trunk:
        if layer.kind == "pool":
            config.append("M")
        elif layer.kind == "lrn":
            config.append("LRN")
        else:
            if named:
                b, i = _conv_position(layer, source)
                if b != block:
                    if b != block + 1 or not config:
                        raise ValueError(f"{source}: convolution {layer.name} comes after block {block}'s")
                    config.append("M")
                    block = b
                wanted = 1 + sum(1 for c in config[_block_start(config) :] if not isinstance(c, str))
                if i != wanted:
                    raise ValueError(f"{source}: convolution {layer.name} comes where conv{b}_{wanted} belongs")
            kind = _kind(layer, source)
            width = int(layer.weight.shape[0])
            config.append(width if kind == "3x3" else (width, 1))
    if named and config:
        config.append("M")  # pool5 (the authors' nets end every block, the last too, with a 2x2 max-pool)
    return config


def _block_start(config: list[Layer]) -> int:
    return max((i + 1 for i, c in enumerate(config) if c == "M"), default=0)


def _conv_position(layer: FoundLayer, source: str) -> tuple[int, int]:
    match = CONV_NAME.match(layer.name or "")
    if not match:
        raise ValueError(f"{source}: {layer.source} is not named as a VGG's convolution (conv1_1 ... conv5_x)")
    return int(match.group(1)), int(match.group(2))


def _kind(layer: FoundLayer, source: str, strict: bool = True) -> str:
    shape = tuple(layer.weight.shape)
    if len(shape) == 4 and shape[2] == shape[3] and shape[2] in (1, 3):
        return f"{shape[2]}x{shape[2]}"
    if not strict:
        return "x".join(map(str, shape[2:])) or "dense"
    raise ValueError(
        f"{source}: {layer.source} has weights of shape {shape}; a VGG's trunk has only 3x3 and 1x1 convolutions"
    )


def _check_chain(convs: list[FoundLayer], source: str) -> int:
    if not convs:
        raise ValueError(f"{source} holds no convolutions: not a VGG")
    for before, layer in zip(convs, convs[1:]):
        if layer.weight.shape[1] != before.weight.shape[0]:
            raise ValueError(
                f"{source}: {layer.source} takes {layer.weight.shape[1]} channels but {before.source} gives "
                f"{before.weight.shape[0]}"
            )
    channels = int(convs[0].weight.shape[1])
    if channels not in (1, 3):
        raise ValueError(f"{source}: the first convolution takes {channels} channels; images have 1 or 3")
    return channels


def _head(head: list[FoundLayer], channels: int, source: str) -> tuple[int, list[tuple[FoundLayer, torch.Tensor]]]:
    """pool5's side and fc6, fc7, fc8 as linear weights (fc6 flattened over channels, then rows, then columns)."""
    if len(head) != 3:
        raise ValueError(
            f"{source} has {len(head)} layers after its trunk ({', '.join(layer.source for layer in head)}); a "
            "VGG's head is three (fc6, fc7, fc8), or none for the trunk alone"
        )
    fc6 = head[0].weight
    if fc6.dim() == 4:
        if fc6.shape[1] != channels or fc6.shape[2] != fc6.shape[3]:
            raise ValueError(f"{source}: fc6 ({head[0].source}) is a {tuple(fc6.shape)} convolution over pool5")
        pool = fc6.shape[2]
    else:
        pool = math.isqrt(fc6.shape[1] // channels)
        if pool < 1 or pool * pool * channels != fc6.shape[1]:
            raise ValueError(
                f"{source}: fc6 ({head[0].source}) takes {fc6.shape[1]:,} inputs, which is no square map of pool5's "
                f"{channels} channels"
            )
    flat = [layer.weight.reshape(layer.weight.shape[0], -1) for layer in head]
    for (a, name_a), (b, name_b) in zip(zip(flat, HEAD), zip(flat[1:], HEAD[1:])):
        if b.shape[1] != a.shape[0]:
            raise ValueError(f"{source}: {name_b} takes {b.shape[1]:,} inputs but {name_a} gives {a.shape[0]:,}")
    if flat[1].shape[0] != flat[0].shape[0]:
        raise ValueError(
            f"{source}: fc6 and fc7 have {flat[0].shape[0]} and {flat[1].shape[0]} outputs; a VGG's are equal"
        )
    return int(pool), list(zip(head, flat))


class Declared:
    """The tensors one file declares, checked before their data is read: each shape against the largest tensor of
    any VGG (and a kernel against a VGG's convolutions), all of them against the largest VGG, and each against the
    bytes the file holds for it."""

    def __init__(self, source: str) -> None:
        self.source, self.total = source, 0

    def shape(self, shape: Sequence[int], what: str) -> int:
        """The number of values ``shape`` declares; ``ValueError`` where no VGG has so many."""
        dims = tuple(int(d) for d in shape)
        count = math.prod(dims)
        if any(d < 0 for d in dims):
            raise ValueError(f"{self.source}: {what} declares the shape {_dims(dims)}: the file is damaged")
        if count > MAX_VALUES:
            raise ValueError(
                f"{self.source}: {what} declares {_dims(dims)}, {count:,} values, more than the largest tensor of any "
                f"VGG ({MAX_VALUES:,}): the file declares more than a VGG holds, and none of it is read"
            )
        self.total += count
        if self.total > MAX_FILE_VALUES:
            raise ValueError(
                f"{self.source} declares {self.total:,} values by {what}, more than any VGG holds "
                f"({MAX_FILE_VALUES:,}): none of them is read"
            )
        return count

    def items(self, shape: Sequence[int], most: int, unit: str, what: str) -> int:
        """The elements ``shape`` declares (cells, characters ...), refused beyond ``most``."""
        count = math.prod(int(d) for d in shape)
        if count > most or count < 0:
            raise ValueError(
                f"{self.source}: {what} declares {count:,} {unit}, where a VGG's file has at most {most:,}"
            )
        return count

    def kernel(self, height: int, width: int, inputs: int, outputs: int, what: str) -> None:
        """A convolution's declared kernel: square, 3x3 with plausible channels, 1x1, or fc6's side over pool5."""
        if height != width or not 1 <= height <= MAX_SIDE or (height == 3 and max(inputs, outputs) > MAX_WIDTH):
            raise ValueError(
                f"{self.source}: {what} declares a {height}x{width} kernel from {inputs:,} to {outputs:,} channels; a "
                f"VGG's convolutions are 3x3 (1x1 in net C) with at most {MAX_WIDTH:,} channels, and fc6 as a "
                f"convolution is square, at most {MAX_SIDE}x{MAX_SIDE}"
            )

    def held(self, count: int, itemsize: int, held: int, what: str, inflate: int = 0) -> None:
        """``count`` values of ``itemsize`` bytes against the ``held`` bytes the file has for them: exactly as many
        (``inflate`` 0), or at most ``inflate`` times as many, once decompressed (1: stored as they are)."""
        need = count * itemsize
        fits = need == held if not inflate else need <= held * inflate + SMALL_BYTES
        if fits:
            return
        how = f"{held:,} bytes" + (f" compressed, at most {held * inflate:,} decompressed" if inflate > 1 else "")
        raise ValueError(
            f"{self.source}: {what} declares {count:,} values ({need:,} bytes) but the file holds {how}: truncated, "
            "damaged or made to declare more than it holds"
        )

    def hdf5(self, dataset: Any, what: str) -> int:
        """An HDF5 dataset's type, shape and storage, before it is read (h5py's ``Dataset``); its value count."""
        if not hasattr(dataset, "dtype") or not hasattr(dataset, "shape"):
            raise ValueError(f"{self.source}: {what} is a group where an array belongs")
        if dataset.dtype.kind not in "fiub":
            raise ValueError(f"{self.source}: {what} holds {dataset.dtype} values, where numbers belong")
        if dataset.external or dataset.is_virtual:
            raise ValueError(f"{self.source}: {what} keeps its values in other files; vggnet reads the file alone")
        count = self.shape(dataset.shape if dataset.shape is not None else (0,), what)
        filtered = dataset.chunks is not None and dataset.id.get_create_plist().get_nfilters() > 0
        self.held(count, dataset.dtype.itemsize, dataset.id.get_storage_size(), what, DEFLATE_MOST if filtered else 1)
        return count


def _dims(dims: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in dims) or "a scalar"
