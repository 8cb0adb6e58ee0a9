"""Exported models run through OpenVINO, behind the interface evaluation uses (calling it gives class scores).

OpenVINO reads vggnet's ONNX files (float32, or the int8 QDQ file ``export --int8`` writes, which it runs as int8)
and its own IR (``model.xml``/``model.bin``, ``export --openvino``), whose ``rt_info`` holds the same metadata as the
ONNX file's properties. Arithmetic is float32 unless ``precision="bf16"`` is asked for: OpenVINO's own default on
CPUs with bf16 units (AVX512-BF16, AMX) is bf16, about twice as fast and no longer float32, so vggnet sets it
explicitly either way and says which it ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .exported import METADATA, ExportedModel, file_size
from .onnxruntime_engine import read_onnx_metadata

PRECISIONS = ("f32", "bf16")


def read_ir_metadata(model: Any) -> dict[str, Any]:
    """The ``vggnet`` entries of an OpenVINO model's rt_info."""
    found = {}
    for key in METADATA:
        if model.has_rt_info(["vggnet", key]):
            found[key] = json.loads(model.get_rt_info(["vggnet", key]).astype(str))
    return found


class OpenVinoModel(ExportedModel):
    """An OpenVINO compiled model with the parts of :class:`vggnet.VGG`'s interface that evaluation uses. Batch and
    image size stay dynamic, as exported; ``hint`` is OpenVINO's performance hint (LATENCY: all cores on each
    request). Copies compiled for one input shape (:meth:`compile_fixed`, kept with :meth:`keep_fixed`) run the
    batches of exactly that shape: on some CPUs a fixed shape is much faster (:mod:`vggnet.engines.fixed`)."""

    engine = "openvino"
    device_note = "exported models run on the CPU here (OpenVINO's CPU plugin)"

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, precision: str = "f32", hint: str = "LATENCY"
    ) -> None:
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as err:  # OpenVINO raises its own exception types for unreadable models
            raise ValueError(f"cannot load model {path} with OpenVINO: {str(err).splitlines()[0][:200]}") from None
        self.take_metadata(
            path, read_ir_metadata(model) if Path(str(path)).suffix == ".xml" else read_onnx_metadata(path)
        )
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as err:  # e.g. under ONEDNN_MAX_CPU_ISA limits its CPU plugin cannot meet
            reason = next((line for line in str(err).splitlines() if "node" in line or "failed" in line), str(err))
            raise ValueError(f"OpenVINO cannot compile {path} on this CPU: {reason.strip()[:200]}") from None
        self.request = self.compiled.create_infer_request()
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # what it runs
        self.model, self.core, self.config, self.threads = model, core, config, threads
        self.size = file_size(Path(str(path)))
        self.fixed: dict[tuple[int, ...], tuple[Any, Any]] = {}  # input shape -> its compiled copy and request

    def compile_fixed(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for inputs of exactly ``shape`` (N x C x H x W), with this model's settings."""
        copy = self.model.clone()
        copy.reshape(list(shape))
        return self.core.compile_model(copy, "CPU", self.config)

    def keep_fixed(self, shape: tuple[int, ...], compiled: Any) -> None:
        """Run batches of ``shape`` through ``compiled`` (from :meth:`compile_fixed`) from now on."""
        self.fixed[tuple(shape)] = (compiled, compiled.create_infer_request())

    def run(self, batch: np.ndarray) -> np.ndarray:
        compiled, request = self.fixed.get(batch.shape, (self.compiled, self.request))
        return request.infer({0: batch})[compiled.output(0)].copy()
