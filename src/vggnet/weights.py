"""Reading and writing weights: local files, URLs, torchvision's official weights and timm's layout.

Nothing here unpickles arbitrary objects: ``.safetensors`` is read with safetensors and ``.pth``/``.pt`` with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .files import atomic_write

OFFICIAL = ("torchvision", "imagenet", "default")


def official_weights(arch: str | None, tag: str = "DEFAULT"):
    """torchvision's weights enum entry for ``arch`` (``"vgg16_bn"``) and tag (``"DEFAULT"``, ``"IMAGENET1K_V1"``)."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(arch or "")
    except (ValueError, KeyError):
        raise ValueError(
            f"torchvision publishes no weights for architecture {arch!r}; official weights exist for "
            "vgg11, vgg13, vgg16, vgg19 and their _bn variants"
        ) from None
    tag = "DEFAULT" if tag.lower() in OFFICIAL else tag.upper()
    try:
        return enum[tag] if tag != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"unknown weights {tag!r} for {arch}; torchvision has {', '.join(e.name for e in enum)}"
        ) from None


def download(url: str) -> Path:
    """The local path of ``url``, fetched once into torch's hub cache (``file://`` URLs are read in place)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise ValueError(f"no such weights file: {path}")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(parsed.path)
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    return cached


def read_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``.pth``/``.pt`` file, or from a vggnet training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses pickled code: say so plainly
        raise ValueError(f"cannot read weights from {path}: {err}") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return obj


def is_official_name(source: str | os.PathLike) -> bool:
    """Whether ``source`` names torchvision's weights ("torchvision", "IMAGENET1K_V1" ...) rather than a file."""
    text = str(source)
    return not Path(text).exists() and (text.lower() in OFFICIAL or text.upper().startswith("IMAGENET"))


def resolve_source(model: nn.Module, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    text = str(source)
    if "://" in text:
        return read_file(download(text))
    if is_official_name(text):
        return read_file(download(official_weights(getattr(model, "arch", None), text).url))
    return read_file(text)


def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring a state dict into torchvision's layout: drop DDP/compile prefixes, convert timm's head."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    timm = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}
    for old, new in timm.items():
        for suffix in ("weight", "bias"):
            value = out.pop(f"{old}.{suffix}", None)
            if value is not None:
                # timm keeps fc6/fc7 as convolutions; flattening the kernel gives the same linear map.
                out[f"{new}.{suffix}"] = value.reshape(value.shape[0], -1) if suffix == "weight" else value
    return out


def check_compatible(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Raise ``ValueError`` naming the missing, unexpected and mis-shaped keys, if any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in own
        if k in state and own[k].shape != state[k].shape
    ]
    if missing or unexpected or misshaped:
        arch = getattr(model, "arch", None) or type(model).__name__
        lines = [f"{source} do not fit {arch} ({getattr(model, 'num_classes', '?')} classes):"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = items[:20] + ([f"... {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {label} ({len(items)}): " + ", ".join(shown))
        raise ValueError("\n".join(lines))


def load_weights(model: nn.Module, source: str | os.PathLike) -> nn.Module:
    """Load weights into ``model`` in place and return it.

    ``source``: a ``.pth``/``.pt``/``.safetensors`` file (or a vggnet checkpoint), an ``http(s)://`` or ``file://``
    URL, or ``"torchvision"``/``"IMAGENET1K_V1"``/... for torchvision's official weights of ``model.arch``
    (downloaded into torch's hub cache). timm's VGG layout is recognised and converted.
    """
    state = convert(resolve_source(model, source))
    check_compatible(model, state, f"weights from {source}")
    model.load_state_dict(state, strict=True)
    return model


def model_metadata(model: nn.Module) -> dict[str, str]:
    """What is needed to rebuild ``model``: stored as safetensors metadata (strings only)."""
    meta = {"format": "vggnet"}
    if hasattr(model, "effective_config"):
        meta["config"] = json.dumps(model.effective_config())
        meta["fc_width"] = json.dumps(model.classifier[0].out_features)
    for key in ("arch", "num_classes", "in_channels", "batch_norm", "pool_size"):
        if hasattr(model, key):
            meta[key] = json.dumps(getattr(model, key))
    return meta


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights as safetensors, atomically, with what is needed to rebuild it as metadata."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_weights writes safetensors; give a path ending in .safetensors, got {path}")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {**model_metadata(model), **(metadata or {})}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """The metadata ``save_weights`` stored, decoded (empty for files of other origins)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return decode_metadata(f.metadata() or {})


def decode_metadata(meta: dict[str, str]) -> dict[str, object]:
    """Metadata strings back to values (JSON where they are JSON)."""
    out: dict[str, object] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
