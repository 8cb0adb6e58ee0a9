"""Export to TorchScript and ONNX in the paper's dense form, checked against PyTorch before success is declared."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..base.extras import require
from ..base.files import Staging, folder_lock
from ..base.settings import AT_LEAST_ONE, setting
from ..engines.onnxruntime_engine import OnnxModel
from ..inference.folding import fuse_batch_norm
from ..inference.loading import Loaded, ModelChoice
from ..network.model import VGG
from .int8 import Int8Settings, check_agreement, export_int8, resolve_scheme
from .metadata import exported_metadata, save_ir, write_metadata
from .triton import model_config, write_triton


@dataclass
class ExportSettings(ModelChoice):
    """``vggnet export``: TorchScript and ONNX (dense head, dynamic batch and size), checked; int8 and a Triton
    repository on request (the int8 options are :class:`Int8Settings`)."""

    out: str = setting("runs/export", "output folder")
    format: list[str] = setting(["torchscript", "onnx"], "formats to write", choices=("torchscript", "onnx"))
    opset: int = setting(17, "ONNX opset (13 and up with --int8)")
    int8: bool = setting(False, "also write model.int8.onnx, statically quantised (QDQ)")
    openvino: bool = setting(
        False, "also write OpenVINO's IR, model.xml and model.bin (and model.int8.xml with --int8), checked likewise"
    )
    triton: str | None = setting(
        None,
        "also write a Triton model repository: DIR/NAME/1/model.onnx (int8 with --int8), config.pbtxt (dynamic "
        "batching; checked against Triton's schema), labels.txt",
        metavar="DIR",
    )
    name: str = setting("vggnet", "the model's name in the Triton repository")
    triton_backend: str = setting(
        "onnxruntime",
        "the Triton repository's backend: onnxruntime (model.onnx) or openvino (model.xml, model.bin)",
        choices=("onnxruntime", "openvino"),
    )
    max_batch: int = setting(16, "the Triton repository's max_batch_size (vggnet serve's --max-batch)", AT_LEAST_ONE)
    mirror: bool = setting(
        True, "the Triton model averages each image's posteriors with its mirror image's, as vggnet serve does"
    )


class DenseClassifier(nn.Module):
    """Class scores of the fully convolutional net: the spatial mean of ``score_map``, for any image size the dense
    head accepts (224 and up for the paper's head).

    For export the head is written as the paper wrote it, fc6 a ``pool_size`` x ``pool_size`` convolution and fc7,
    fc8 1 x 1 convolutions over views of the same weights: ONNX runtimes (and their int8 quantisers) have fast
    convolutions, where PyTorch's unfold would export as a chain of gathers.
    """

    def __init__(self, model: VGG) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        y = m.features(x)
        fc6, _, _, fc7, _, _, fc8 = m.classifier
        p = m.pool_size
        y = F.relu(F.conv2d(y, fc6.weight.view(fc6.out_features, -1, p, p), fc6.bias))
        y = F.relu(F.conv2d(y, fc7.weight[:, :, None, None], fc7.bias))
        return F.conv2d(y, fc8.weight[:, :, None, None], fc8.bias).mean((2, 3))


def check_sizes(model: VGG) -> list[tuple[int, int, int]]:
    """Batch and image sizes the exported model is checked at: the smallest input and a larger, non-square one."""
    s, step = model.min_input(model.pool_size), 2 ** model.config.count("M")
    return [(1, s, s), (2, s + step, s + 3 * step)]


def _compare(name: str, run, reference, model: VGG, tolerance: float) -> float:
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


FILES = {
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
    "int8": "model.int8.onnx",
    "openvino": "model.xml",
    "openvino_int8": "model.int8.xml",
}
# every file an export may leave, OpenVINO's weights beside its .xml included
LEFT = [*FILES.values(), "model.bin", "model.int8.bin"]


def opset_range(int8: bool = False) -> range:
    """The ONNX opsets export can write: what PyTorch's exporter supports (and onnxruntime runs), from 13 for int8
    (per-channel QuantizeLinear)."""
    from torch.onnx import _constants

    low = 13 if int8 else getattr(_constants, "ONNX_MIN_OPSET", 7)
    return range(low, getattr(_constants, "ONNX_MAX_OPSET", 20) + 1)


def check_options(formats: tuple[str, ...], opset: int, int8: Int8Settings | None = None) -> None:
    """Refuse what export cannot honour before any work is done."""
    for f in formats:
        if f not in ("torchscript", "onnx", "openvino"):
            raise ValueError(f"unknown export format {f!r}; expected torchscript, onnx or openvino")
    if {"onnx", "openvino"} & set(formats) or int8 is not None:  # ONNX is written, and checked in onnxruntime
        for module in ("onnx", "onnxscript", "onnxruntime"):
            require(module, "export to ONNX")
    if "openvino" in formats:
        require("openvino", "--openvino")
    works = opset_range(int8 is not None)
    if opset not in works:
        raise ValueError(
            f"ONNX opset {opset} cannot be written{' with --int8' if int8 else ''}; opsets "
            f"{works.start}-{works.stop - 1} work"
        )
    if int8 is not None:
        resolve_scheme(int8.int8_scheme)
        if int8.calibration < 1 or int8.check < 1:
            raise ValueError("--calibration and --check must be positive image counts")


def export(
    loaded: Loaded,
    out: str | os.PathLike,
    formats: tuple[str, ...] = ("torchscript", "onnx"),
    opset: int = 17,
    tolerance: float = 1e-4,
    int8: Int8Settings | None = None,
) -> dict[str, dict[str, object]]:
    """Write ``model.torchscript.pt`` and/or ``model.onnx`` under ``out`` (dynamic batch and image size), each checked
    at two sizes against PyTorch (ONNX through onnxruntime); with ``int8``, also ``model.int8.onnx``, statically
    quantised and checked on held-out images. Returns each file's path and how it was checked.

    Every file is built and checked aside; only when all of them are complete do they replace the folder's earlier
    set together (an earlier file this export does not write is removed, so no folder mixes two exports). The
    folder is locked meanwhile."""
    check_options(formats, opset, int8)
    if not isinstance(loaded.model, VGG):
        raise ValueError(f"{loaded.source} is already an exported model; export the PyTorch weights it came from")
    out = Path(out)
    with folder_lock(out, "export folder"), Staging(out) as stage:
        results = _build(loaded, stage, formats, opset, tolerance, int8)
        written = [Path(f).name for r in results.values() for f in r.get("files", [r["path"]])]
        for r in results.values():
            r["path"] = str(out / Path(r["path"]).name)
            r.pop("files", None)
        removed = stage.commit(written, replaces=LEFT)
    if removed:
        results["removed"] = {"files": removed}
    return results


def _build(
    loaded: Loaded,
    stage: Staging,
    formats: tuple[str, ...],
    opset: int,
    tolerance: float,
    int8: Int8Settings | None,
) -> dict[str, dict[str, object]]:
    """Write and check every requested file in the staging folder."""
    model = fuse_batch_norm(loaded.model).eval()
    wrapper = DenseClassifier(model).eval()
    _, h, w = check_sizes(model)[0]
    example = torch.randn(1, model.in_channels, h, w)
    results: dict[str, dict[str, object]] = {}
    original = loaded.model.eval()

    def reference(x: torch.Tensor) -> torch.Tensor:
        return original.score_map(x).mean((2, 3))

    if "torchscript" in formats:
        path = stage.path(FILES["torchscript"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the input checks are constant-folded by tracing, as intended
            traced = torch.jit.trace(wrapper, example, check_trace=False)
            traced.save(str(path))  # (TorchScript's deprecation notice: the format still serves C++ users)
            loaded_back = torch.jit.load(str(path))
        error = _compare("TorchScript", lambda x: loaded_back(x), reference, model, tolerance)
        results["torchscript"] = {"path": str(path), "max_rel_error": error}
    if "onnx" in formats or "openvino" in formats or int8 is not None:
        path = stage.path(FILES["onnx"])
        _export_onnx(wrapper, example, path, opset, loaded, "float32")
        error = _compare("ONNX", OnnxModel(path), reference, model, tolerance)
        results["onnx"] = {"path": str(path), "max_rel_error": error}
    if int8 is not None:
        results["int8"] = export_int8(loaded, stage.path(FILES["onnx"]), stage.path(FILES["int8"]), int8)
    if "openvino" in formats:
        results.update(export_openvino(loaded, stage, reference, model, tolerance, int8))
    return results


def export_openvino(
    loaded: Loaded, stage: Staging, reference, model: VGG, tolerance: float, int8: Int8Settings | None
) -> dict[str, dict[str, object]]:
    """OpenVINO's IR of the float ONNX file, checked against PyTorch at two sizes; with ``int8``, of the int8 file
    too, checked as the int8 ONNX file is (top-1 agreement with float32 on the held-out images)."""
    from ..engines.openvino_engine import OpenVinoModel

    files = save_ir(stage.path(FILES["onnx"]), stage.path(FILES["openvino"]))
    error = _compare("OpenVINO", OpenVinoModel(files[0]), reference, model, tolerance)
    results: dict[str, dict[str, object]] = {
        "openvino": {"path": str(files[0]), "files": files, "max_rel_error": error}
    }
    if int8 is not None:
        files = save_ir(stage.path(FILES["int8"]), stage.path(FILES["openvino_int8"]))
        settings = int8.with_sources(loaded.model.in_channels)
        check = check_agreement(
            loaded, OpenVinoModel(files[0]), settings.check_on, settings.check, loaded.default_scale
        )
        if check["agreement"] < settings.min_agreement:
            raise ValueError(
                f"through OpenVINO the int8 model agrees with the float32 one on {100 * check['agreement']:.1f}% of "
                f"{check['images']} held-out images, below {100 * settings.min_agreement:.0f}%: nothing written"
            )
        results["openvino_int8"] = {"path": str(files[0]), "files": files, **check}
    return results


def _export_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, loaded: Loaded, precision: str):
    model = wrapper.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["scores"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    write_metadata(path, exported_metadata(loaded, model, precision))


# -- int8 ----------------------------------------------------------------------------------------------------------


def run_export(s: ExportSettings, loaded: Loaded, int8: Int8Settings | None = None) -> dict[str, dict[str, object]]:
    """``vggnet export``: the files ``s`` asks for (a Triton repository's config checked before any work), and a
    line on how each was checked."""
    loaded.check_head("an exported classifier")
    formats = tuple(sorted({*s.format, *(["openvino"] if s.openvino else [])}))
    if s.triton:
        if Path(s.triton).exists() and not Path(s.triton).is_dir():
            raise ValueError(f"--triton {s.triton} is a file; give a folder")
        platform = "onnxruntime_onnx" if s.triton_backend == "onnxruntime" else "openvino"
        model_config(s.name, loaded, platform, s.max_batch, mirror=s.mirror)  # checked before any work
        formats = tuple(sorted({*formats, "onnx"}))
    results = export(loaded, s.out, formats, opset=s.opset, int8=int8)
    if s.triton:
        model = results["int8" if int8 else "onnx"]["path"]
        folder = write_triton(loaded, model, s.triton, s.name, s.max_batch, s.triton_backend, s.mirror)
        results["triton"] = {"path": str(folder), "backend": s.triton_backend}
    for fmt, r in results.items():
        print(describe_export(fmt, r))
    return results


def describe_export(fmt: str, r: dict[str, object]) -> str:
    """One line on a written file (or the files an export removed)."""
    if fmt == "removed":
        return f"removed {', '.join(r['files'])} of the earlier export (not part of this one)"
    if fmt == "triton":
        files = "1/model.onnx" if r.get("backend", "onnxruntime") == "onnxruntime" else "1/model.xml, 1/model.bin"
        return (
            f"triton: {r['path']} ({files}: image -> probabilities as vggnet serve answers them; config.pbtxt with "
            "dynamic batching, parsed with Triton's ModelConfig; labels.txt)"
        )
    if fmt in ("int8", "openvino_int8"):
        accuracy = (
            f"accuracy float32 {100 * r['float_accuracy']:.2f}%, int8 {100 * r['int8_accuracy']:.2f}%"
            if r["float_accuracy"] is not None
            else f"accuracy not measured: {r['accuracy_note']}"
        )
        scheme = f"{r['scheme']}; " if "scheme" in r else "through OpenVINO; "
        return (
            f"{fmt}: {r['path']} ({scheme}checked on {r['images']} held-out images: top-1 agreement with "
            f"float32 {100 * r['agreement']:.2f}%, {accuracy})"
        )
    return f"{fmt}: {r['path']} (checked against PyTorch at two sizes: max relative error {r['max_rel_error']:.1e})"
