"""Models ready for inference: rebuilt from a checkpoint or weights file, with BN folded and fast memory layout."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .model import VGG, build
from .transforms import IMAGENET_MEAN, IMAGENET_STD
from .weights import check_compatible, convert, decode_metadata, is_official_name, read_metadata, resolve_source


@dataclass
class Loaded:
    """A model with what is needed to feed it: class names, normalisation and the training crop size."""

    model: VGG
    classes: list[str]
    mean: list[float]
    std: list[float]
    crop: int
    source: str


def imagenet_classes() -> list[str]:
    from torchvision.models import VGG16_Weights

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def _training_checkpoint(path: Path) -> dict | None:
    """The contents of a vggnet training checkpoint, or None for other ``.pt``/``.pth`` files (plain weights)."""
    from .checkpoint import load_checkpoint

    try:
        state = load_checkpoint(path)
    except ValueError:
        return None  # read_file below says what is wrong with it, if anything
    return state if "config" in state and "stats" in state else None


def load_model(source: str | os.PathLike, arch: str | None = None) -> Loaded:
    """Rebuild a model from a vggnet checkpoint (``.pt``), a vggnet ``.safetensors`` file, or any weights file or
    URL together with ``arch`` (the class count is read from the weights)."""
    text = str(source)
    path = Path(text)
    if "://" not in text and not is_official_name(text) and not path.is_file():
        raise ValueError(f"no such weights file: {path}")
    meta: dict = {}
    extra: dict = {}
    weights = None
    if path.suffix in (".pt", ".pth") and path.is_file():
        state = _training_checkpoint(path)
        if state is not None:
            meta = decode_metadata(state.get("meta", {}))
            extra = {
                "classes": state.get("classes"),
                "mean": state["stats"]["mean"],
                "std": state["stats"]["std"],
                "crop": state.get("crop", state.get("config", {}).get("crop")),
            }
            weights = state["model"]
    elif path.suffix == ".safetensors" and path.is_file():
        meta = read_metadata(path)
        extra = {k: meta.get(k) for k in ("classes", "mean", "std", "crop")}
    if arch is not None or "config" not in meta:
        if arch is None:
            raise ValueError(f"{text} does not say which architecture it holds; give --arch (e.g. vgg16)")
        with torch.device("meta"):  # only to resolve official short names; rebuilt below with the class count
            probe = build(arch)
        state = convert(weights if weights is not None else resolve_source(probe, text))
        head = state.get("classifier.6.weight")
        if head is None:
            raise ValueError(f"{text} holds no classifier.6 (fc8) weights")
        model = build(
            arch, num_classes=head.shape[0], in_channels=state["features.0.weight"].shape[1], fc_width=head.shape[1]
        )
    else:
        model = VGG(
            meta["config"],
            num_classes=meta["num_classes"],
            in_channels=meta["in_channels"],
            batch_norm=meta["batch_norm"],
            pool_size=meta["pool_size"],
            fc_width=meta["fc_width"],
            arch=meta.get("arch"),
        )
        state = convert(weights if weights is not None else resolve_source(model, text))
    check_compatible(model, state, f"weights from {text}")
    model.load_state_dict(state)
    model.eval()
    classes = extra.get("classes") or (
        imagenet_classes() if model.num_classes == 1000 else [f"class {i}" for i in range(model.num_classes)]
    )
    rgb = model.in_channels == 3
    mean = extra.get("mean") or (list(IMAGENET_MEAN) if rgb else [0.5] * model.in_channels)
    std = extra.get("std") or (list(IMAGENET_STD) if rgb else [0.5] * model.in_channels)
    crop = int(extra.get("crop") or 224)
    return Loaded(model, list(classes), list(mean), list(std), crop, text)


@torch.no_grad()
def fuse_batch_norm(model: VGG) -> VGG:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into the convolution before it.

    Layer names and indices stay; the BN modules become ``nn.Identity``. Outputs equal the original's to float
    tolerance, with one pass over each activation fewer.
    """
    fused = copy.deepcopy(model).eval()
    layers = fused.features
    for i in range(1, len(layers)):
        conv, bn = layers[i - 1], layers[i]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            layers[i] = nn.Identity()
    return fused


def prepare(
    model: VGG, device: torch.device | str = "cpu", channels_last: bool = True, fuse: bool = True, compile: bool = False
) -> nn.Module:
    """The fast inference form: eval mode, BN folded, channels_last, optionally compiled. Use it under
    ``torch.inference_mode()``."""
    model = fuse_batch_norm(model) if fuse and model.batch_norm else model.eval()
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if not compile:
        return model
    import torch._inductor.config as inductor

    # Inference only: weights become constants, so oneDNN/cuDNN can pre-pack them and fuse the ReLUs.
    inductor.freezing = True
    return torch.compile(model)
