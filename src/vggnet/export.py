"""Export to TorchScript and ONNX in the paper's dense form, checked against PyTorch before success is declared."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .files import atomic_path
from .inference import Loaded, fuse_batch_norm
from .model import VGG


class DenseClassifier(nn.Module):
    """Class scores of the fully convolutional net: the spatial mean of ``score_map``, for any image size the dense
    head accepts (224 and up for the paper's head)."""

    def __init__(self, model: VGG) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.score_map(x).mean((2, 3))


def check_sizes(model: VGG) -> list[tuple[int, int, int]]:
    """Batch and image sizes the exported model is checked at: the smallest input and a larger, non-square one."""
    s = model.min_size * model.pool_size
    return [(1, s, s), (2, s + model.min_size, s + 3 * model.min_size)]


def _compare(name: str, run, reference: nn.Module, model: VGG, tolerance: float) -> float:
    worst = 0.0
    for batch, h, w in check_sizes(model):
        x = torch.randn(batch, model.in_channels, h, w)
        with torch.inference_mode():
            expected = reference(x)
        got = torch.as_tensor(run(x))
        if got.shape != expected.shape:
            raise ValueError(
                f"{name} export gives shape {tuple(got.shape)} at {h}x{w}, PyTorch {tuple(expected.shape)}"
            )
        error = ((got - expected).norm() / expected.norm().clamp_min(1e-12)).item()
        worst = max(worst, error)
        if not error <= tolerance:
            raise ValueError(
                f"{name} export disagrees with PyTorch at batch {batch}, {h}x{w}: relative error {error:.2e}"
            )
    return worst


def export(
    loaded: Loaded,
    out: str | os.PathLike,
    formats: tuple[str, ...] = ("torchscript", "onnx"),
    opset: int = 17,
    tolerance: float = 1e-4,
) -> dict[str, dict[str, object]]:
    """Write ``model.torchscript.pt`` and/or ``model.onnx`` under ``out`` (dynamic batch and image size), each checked
    at two sizes against PyTorch (ONNX through onnxruntime). Returns each file's path and worst relative error."""
    for f in formats:
        if f not in ("torchscript", "onnx"):
            raise ValueError(f"unknown export format {f!r}; expected torchscript or onnx")
    out = Path(out)
    model = fuse_batch_norm(loaded.model).eval()
    wrapper = DenseClassifier(model).eval()
    _, h, w = check_sizes(model)[0]
    example = torch.randn(1, model.in_channels, h, w)
    results: dict[str, dict[str, object]] = {}
    reference = DenseClassifier(loaded.model.eval()).eval()
    if "torchscript" in formats:
        path = out / "model.torchscript.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the input checks are constant-folded by tracing, as intended
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice; the format still serves C++ users
            traced.save(str(tmp))
            loaded_back = torch.jit.load(str(tmp))
            error = _compare("TorchScript", lambda x: loaded_back(x), reference, model, tolerance)
        results["torchscript"] = {"path": str(path), "max_rel_error": error}
    if "onnx" in formats:
        import onnxruntime as ort

        path = out / "model.onnx"
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(tmp),
                input_names=["image"],
                output_names=["scores"],
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            error = _compare("ONNX", lambda x: session.run(None, {"image": x.numpy()})[0], reference, model, tolerance)
        results["onnx"] = {"path": str(path), "max_rel_error": error}
    return results
