"""Keras's VGG files read with h5py, never through TensorFlow or Keras itself.

Three layouts: the HDF5 files of Keras 2 and of Keras 3's ``model.save("x.h5")`` (a ``layer_names`` list, each
layer's ``weight_names``; ``model_config`` beside them when the whole model was saved, as in keras.applications'
downloads without it), Keras 3's ``.weights.h5`` (``layers/<layer>/vars/0, 1``), and Keras 3's ``.keras`` zip
(``config.json`` plus that weights file). Kernels are channels-last (kh x kw x in x out) and become PyTorch's
out x in x kh x kw; the first dense layer after a ``Flatten`` of a channels-last map takes its inputs row by row,
then column, then channel, and is re-ordered to PyTorch's channel-major flattening.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .net import DEFLATE_MOST, MAX_FILE_VALUES, SMALL_BYTES, Declared, ForeignNet, FoundLayer, mean_pixel_for

CONV = ("Conv2D", "Convolution2D")
POOL = ("MaxPooling2D", "MaxPool2D")
DENSE = ("Dense",)
# Layers with nothing to load that leave a VGG's arithmetic as it is (ReLU and softmax, flattening, dropout ...).
PASSIVE = (
    "InputLayer",
    "Flatten",
    "Dropout",
    "Activation",
    "ReLU",
    "Softmax",
    "ZeroPadding2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
)


def read(path: Path) -> ForeignNet:
    """The VGG in a Keras ``.h5``, ``.weights.h5`` or ``.keras`` file, with Keras applications' "caffe" input
    (BGR, 0-255, minus ImageNet's mean pixel; VGG-Face's for its 2,622 identities)."""
    import h5py

    try:
        if path.suffix == ".keras":
            config, weights = _open_zip(path)
            with h5py.File(weights, "r") as f:
                return _read(f, path, config, "Keras 3 .keras file")
        with h5py.File(path, "r") as f:
            config = _json(f.attrs.get("model_config"))
            return _read(f, path, config, "Keras HDF5 file")
    except OSError as err:
        raise ValueError(f"cannot read {path} as a Keras file: truncated or not HDF5 ({err})") from None


def _open_zip(path: Path) -> tuple[dict[str, Any], io.BytesIO]:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not {"config.json", "model.weights.h5"} <= names:
                raise ValueError(f"{path} is a zip without Keras's config.json and model.weights.h5")
            for name, most in (("config.json", 64 << 20), ("model.weights.h5", 4 * MAX_FILE_VALUES + (64 << 20))):
                _check_member(z.getinfo(name), most, path)
            return json.loads(z.read("config.json")), io.BytesIO(z.read("model.weights.h5"))
    except (zipfile.BadZipFile, json.JSONDecodeError, EOFError) as err:
        raise ValueError(f"cannot read {path} as a .keras file: truncated or not a zip ({err})") from None


def _check_member(info: zipfile.ZipInfo, most: int, path: Path) -> None:
    """A member's declared size, before it is read into memory: no larger than a VGG's file, nor than its
    compressed bytes can inflate to."""
    if info.file_size > most or info.file_size > info.compress_size * DEFLATE_MOST + SMALL_BYTES:
        raise ValueError(
            f"{path}: its {info.filename} declares {info.file_size:,} bytes from {info.compress_size:,} compressed, "
            "more than a VGG's file holds or than the compressed bytes can hold: damaged or made to declare more "
            "than it holds"
        )


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return json.loads(value.decode() if isinstance(value, bytes) else str(value))


def _read(f: Any, path: Path, config: dict[str, Any] | None, kind: str) -> ForeignNet:
    layers = _config_layers(config, path)
    declared = Declared(str(path))
    if "layers" in f or "_layer_checkpoint_dependencies" in f:
        arrays, order = _keras3_weights(f, layers, declared)
        kind += ", Keras 3 weights layout"
    else:
        root = f.get("model_weights", f)
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path} holds no Keras weights (no layer_names, no layers/ group): an HDF5 file of another kind, "
                "or a model saved without its weights"
            )
        order = [_text(n) for n in root.attrs["layer_names"]]
        arrays = {n: _arrays(root[n], _weight_names(root, n, path), n, declared) for n in order}
    found, notes = _layers(order, arrays, layers, path)
    if config is None:
        notes.append("the file holds weights only: each layer's kind read from its weights' shapes and its name")
    head = [layer for layer in found if layer.kind in ("fc", "conv")]
    classes = head[-1].weight.shape[0] if head else None
    return ForeignNet(
        format=kind + ("" if config is None else f", model '{config.get('config', {}).get('name', '?')}'"),
        layers=found,
        normalization=mean_pixel_for(classes, "Keras's 'caffe' preprocessing"),
        crop=_input_side(layers),
        notes=notes,
    )


def _config_layers(config: dict[str, Any] | None, path: Path) -> list[dict[str, Any]]:
    if config is None:
        return []
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner  # Keras 2's Sequential: a bare list
    nested = [
        spec["config"].get("name", "?")
        for spec in layers
        if spec.get("class_name") in ("Functional", "Model", "Sequential")
    ]
    if nested:
        raise ValueError(
            f"{path} holds a model inside a model ({', '.join(nested)}): save the inner VGG itself "
            "(inner.save('vgg.keras')) and convert that"
        )
    return layers


def _weight_names(root: Any, layer: str, path: Path) -> list[str]:
    if not hasattr(root.get(layer), "attrs"):
        raise ValueError(f"{path} lists a layer {layer} that it does not hold: truncated or damaged")
    return [_text(w) for w in root[layer].attrs.get("weight_names", [])]


def _arrays(group: Any, keys: list[str], layer: str, declared: Declared) -> list[np.ndarray]:
    """A layer's arrays, each read only after its declared shape and storage are checked (a kernel's against a
    VGG's convolutions)."""
    found = []
    for key in keys:
        held, what = group.get(key) if hasattr(group, "keys") else None, f"layer {layer}'s {key}"
        if held is None:
            raise ValueError(f"{declared.source}: {what} is named but not held: truncated or damaged")
        if len(getattr(held, "shape", ())) == 4 and held.shape[0] == held.shape[1]:  # kh x kw x in x out (Theano's
            declared.kernel(*held.shape, what)  # order, out x in x kh x kw, is named once read)
        declared.hdf5(held, what)
        found.append(np.asarray(held))
    return found


def _keras3_weights(
    f: Any, layers: list[dict[str, Any]], declared: Declared
) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Each layer's arrays by layer name, and the layers' order: the configuration's where there is one; else the
    layers with weights, convolutions then dense layers, each in the order of Keras's numbering."""
    group = f["layers"] if "layers" in f else f["_layer_checkpoint_dependencies"]
    by_name: dict[str, list[np.ndarray]] = {}
    numbered: list[tuple[str, int, str]] = []
    for key in group:
        held = group[key].get("vars", {})
        name = _text(held.attrs.get("name", key)) if hasattr(held, "attrs") else key
        by_name[name] = _arrays(held, [str(i) for i in range(len(held))], key, declared) if len(held) else []
        base, _, number = re.match(r"(.*?)(_(\d+))?$", key).groups()
        numbered.append((base, int(number or 0), name))
    if layers:
        return by_name, [spec["config"]["name"] for spec in layers]
    # Without the configuration the pools cannot be placed among the convolutions (each kind is numbered on its own):
    # the trunk is then matched against Table 1 (vggnet.formats.net).
    rank = {"conv2d": 0, "dense": 1}
    held = [t for t in numbered if by_name[t[2]]]
    return by_name, [name for *_, name in sorted(held, key=lambda t: (rank.get(t[0], 2), t[1]))]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _layers(
    order: list[str],
    arrays: dict[str, list[np.ndarray]],
    specs: list[dict[str, Any]],
    path: Path,
) -> tuple[list[FoundLayer], list[str]]:
    """The layers as vggnet sees them, each checked against what a VGG's layer computes (its Keras class from the
    configuration, ``specs``, or guessed from its weights where the file has none)."""
    spec_of = {spec["config"]["name"]: spec for spec in specs}
    found: list[FoundLayer] = []
    notes: list[str] = []
    padded = channels_first = False
    for name in order:
        held = arrays.get(name, [])
        kind = spec_of.get(name, {}).get("class_name", "?") if specs else _guess(name, held)
        spec = spec_of.get(name, {}).get("config", {})
        channels_first = channels_first or spec.get("data_format") == "channels_first"
        if kind in CONV:
            _check_conv(name, spec, padded, _after_trunk(found), path)
            kernel, bias = _weights(name, held, 4, path)
            _check_declared(name, spec, "filters", kernel.shape[3], path)
            found.append(FoundLayer("conv", name, torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), bias))
        elif kind in DENSE:
            kernel, bias = _weights(name, held, 2, path)
            _check_declared(name, spec, "units", kernel.shape[1], path)
            weight = torch.from_numpy(kernel.T.copy())
            if not channels_first and not any(layer.kind == "fc" for layer in found):
                weight = _channel_major(weight, found, name, path)  # fc6 flattens pool5's map
            found.append(FoundLayer("fc", name, weight, bias))
        elif kind in POOL:
            _check_pool(name, spec, path)
            found.append(FoundLayer("pool", name))
        elif kind in PASSIVE or kind == "?":
            if held:
                raise ValueError(f"{path}: layer {name} ({kind}) has weights that no VGG layer has")
        else:
            raise ValueError(
                f"{path} is not a VGG: it has a {kind} layer ({name}); a VGG has Conv2D, MaxPooling2D and Dense "
                "layers only"
            )
        padded = kind == "ZeroPadding2D" and _pads_one(spec)
        if kind.startswith("Global"):
            notes.append(f"{name}: the trunk's global pooling is left to the user (vggnet's trunk ends at pool5)")
    return found, notes


def _guess(name: str, held: list[np.ndarray]) -> str:
    """A layer's Keras class from its weights (a kernel's rank) and its name, for files without a configuration."""
    if held:
        return {4: "Conv2D", 2: "Dense"}.get(held[0].ndim, "?")
    return "MaxPooling2D" if "pool" in name else ("Flatten" if "flatten" in name else "?")


def _after_trunk(found: list[FoundLayer]) -> bool:
    """Whether a convolution now would be fc6 as a convolution (deepface's VGG-Face): after five pools."""
    return sum(layer.kind == "pool" for layer in found) >= 5


def _weights(name: str, held: list[np.ndarray], rank: int, path: Path) -> tuple[np.ndarray, torch.Tensor | None]:
    if not held or held[0].ndim != rank or (len(held) > 1 and held[1].ndim != 1) or len(held) > 2:
        shapes = ", ".join(str(a.shape) for a in held) or "none"
        raise ValueError(f"{path}: layer {name} holds weights of shapes {shapes}, not a kernel and a bias")
    kernel = held[0].astype(np.float32)
    if rank == 4 and kernel.shape[0] != kernel.shape[1]:
        raise ValueError(
            f"{path}: layer {name}'s kernel is {kernel.shape}, not kh x kw x in x out (a Theano-ordered file? use "
            "the tf_dim_ordering one)"
        )
    bias = torch.from_numpy(held[1].astype(np.float32).copy()) if len(held) > 1 else None
    return kernel, bias


def _channel_major(weight: torch.Tensor, found: list[FoundLayer], name: str, path: Path) -> torch.Tensor:
    """fc6's inputs from Keras's row, column, channel order to PyTorch's channel, row, column."""
    convs = [layer for layer in found if layer.kind == "conv"]
    channels = convs[-1].weight.shape[0] if convs else 0
    side = math.isqrt(weight.shape[1] // max(channels, 1))
    if not channels or side * side * channels != weight.shape[1]:
        raise ValueError(f"{path}: dense layer {name} takes {weight.shape[1]:,} inputs, no square map of {channels}")
    return weight.reshape(-1, side, side, channels).permute(0, 3, 1, 2).reshape(weight.shape[0], -1)


def _check_conv(name: str, spec: dict[str, Any], padded: bool, head: bool, path: Path) -> None:
    if not spec:
        return
    k = tuple(spec.get("kernel_size") or (spec.get("nb_row", 3), spec.get("nb_col", 3)))  # Keras 1: nb_row, nb_col
    strides = tuple(spec.get("strides") or spec.get("subsample") or (1, 1))
    padding = spec.get("padding", spec.get("border_mode"))
    fine = strides == (1, 1) and tuple(spec.get("dilation_rate", (1, 1))) == (1, 1) and spec.get("groups", 1) == 1
    same = padding == "same" or (padded and k == (3, 3)) or k == (1, 1) or head
    if not (fine and same):
        raise ValueError(
            f"{path}: convolution {name} ({k}, strides {strides}, padding {padding}) is not "
            "a VGG's: stride 1, 'same' padding"
        )
    if not head and spec.get("activation", "relu") not in ("relu", "linear"):
        raise ValueError(f"{path}: convolution {name} has activation {spec.get('activation')}; a VGG's is ReLU")


def _check_declared(name: str, spec: dict[str, Any], key: str, held: int, path: Path) -> None:
    declared = spec.get(key, spec.get("nb_filter" if key == "filters" else "output_dim"))  # Keras 1's names
    if declared is not None and int(declared) != held:
        raise ValueError(
            f"{path}: layer {name} declares {int(declared):,} {key} but its weights hold {held:,}: the file is "
            "inconsistent"
        )


def _check_pool(name: str, spec: dict[str, Any], path: Path) -> None:
    if spec and (tuple(spec.get("pool_size", (2, 2))) != (2, 2) or tuple(spec.get("strides") or (2, 2)) != (2, 2)):
        raise ValueError(f"{path}: pooling layer {name} is not a 2x2 max-pool of stride 2")


def _pads_one(spec: dict[str, Any]) -> bool:
    pad = spec.get("padding", 1)
    flat = [
        v
        for p in (pad if isinstance(pad, (list, tuple)) else [pad])
        for v in (p if isinstance(p, (list, tuple)) else [p])
    ]
    return bool(flat) and all(v == 1 for v in flat)


def _input_side(layers: list[dict[str, Any]]) -> int | None:
    for spec in layers:
        shape = spec.get("config", {}).get("batch_shape") or spec.get("config", {}).get("batch_input_shape")
        if shape and len(shape) == 4:
            h, w = (shape[1], shape[2]) if shape[3] in (1, 3) else (shape[2], shape[3])
            return h if h == w and h else None
    return None
