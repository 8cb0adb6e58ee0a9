"""Exported models run through OpenVINO, behind the interface evaluation uses (calling it gives class scores).

OpenVINO reads vggnet's ONNX files (float32, or the int8 QDQ file ``export --int8`` writes, which it runs as int8)
and its own IR (``model.xml``/``model.bin``, ``export --openvino``), whose ``rt_info`` holds the same metadata as the
ONNX file's properties. Arithmetic is float32 unless ``precision="bf16"`` is asked for: OpenVINO's own default on
CPUs with bf16 units (AVX512-BF16, AMX) is bf16, about twice as fast and no longer float32, so vggnet sets it
explicitly either way and says which it ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base.files import quiet_stderr
from .exported import METADATA, ExportedModel, decode_metadata, file_size
from .onnxruntime_engine import read_onnx_metadata

PRECISIONS = ("f32", "bf16")


def read_ir_metadata(model: Any, path: str | os.PathLike = "the model") -> dict[str, Any]:
    """The ``vggnet`` entries of an OpenVINO model's rt_info, read and checked."""
    raw = {k: str(model.get_rt_info(["vggnet", k]).astype(str)) for k in METADATA if model.has_rt_info(["vggnet", k])}
    return decode_metadata(path, raw)


def check_ir(xml: Path) -> None:
    """An IR's two files as OpenVINO needs them, said in a sentence where they are not: the .xml is XML, the .bin
    beside it is there and holds every byte the .xml's constants point into."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.parse(xml).getroot()  # expat: no external entities, no entity expansion bombs
    except ElementTree.ParseError as err:
        raise ValueError(f"{xml} is not an OpenVINO IR: it is not XML ({err})") from None
    if root.tag != "net":
        raise ValueError(f"{xml} is not an OpenVINO IR: its XML is a <{root.tag}>, not a <net>")
    weights = xml.with_suffix(".bin")
    try:
        spans = [int(d.get("offset", 0)) + int(d.get("size")) for d in root.iter("data") if d.get("size")]
    except ValueError:
        raise ValueError(f"{xml} is not an OpenVINO IR: a constant's offset or size is not a number") from None
    if not weights.is_file():
        raise ValueError(f"{xml}'s weights {weights} are missing: an IR is the .xml and the .bin beside it")
    have, needed = weights.stat().st_size, max(spans, default=0)
    if have < needed:
        raise ValueError(f"{weights} holds {have:,} bytes where {xml} needs {needed:,}: it is truncated")


def read_model(core: Any, path: Path) -> Any:
    """OpenVINO's model of an IR (checked first: :func:`check_ir`) or an ONNX file; a sentence where it does not
    read, and none of OpenVINO's log lines."""
    if path.suffix == ".xml":
        check_ir(path)
    try:
        with quiet_stderr():  # its plugins' log lines: the sentence below says what went wrong
            return core.read_model(str(path))
    except Exception as err:  # OpenVINO raises its own exception types for unreadable models
        raise ValueError(f"cannot load model {path} with OpenVINO: {_reason(err)}") from None


def _reason(err: BaseException) -> str:
    """OpenVINO's message without its source locations: the line that says what is wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '", "src/", "[ GENERAL_ERROR ]"))]
    return (useful or lines or [type(err).__name__])[0][:200]


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
        core, file = ov.Core(), Path(str(path))
        model = read_model(core, file)
        self.take_metadata(path, read_ir_metadata(model, path) if file.suffix == ".xml" else read_onnx_metadata(path))
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
