"""Exported ONNX models (float32 or int8) run through onnxruntime behind the interface evaluation uses, so that the
deployed artefact is what ``vggnet eval`` and ``vggnet predict`` measure. The ONNX file carries vggnet's metadata
(:data:`~vggnet.engines.exported.METADATA`) as ``vggnet_*`` properties.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .exported import METADATA, ExportedModel, decode_metadata


class OnnxModel(ExportedModel):
    """An onnxruntime session with the parts of :class:`vggnet.VGG`'s interface that evaluation uses: calling it
    gives class scores; ``score_map`` gives them as a 1 x 1 map (the session already averaged the dense map)."""

    engine = "onnxruntime"
    device_note = "ONNX models run on the CPU here (onnxruntime's CPU execution provider)"
    precision = "f32"  # onnxruntime's CPU provider computes float models in float32, int8 ones in int8

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise ValueError(f"cannot load ONNX model {path}: {str(err).splitlines()[0][:200]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.take_metadata(
            path, decode_metadata(path, {k: props[f"vggnet_{k}"] for k in METADATA if f"vggnet_{k}" in props})
        )
        self.input = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``vggnet_*`` properties of an ONNX file, decoded."""
    from ..formats.onnx import onnx_properties

    try:
        props = onnx_properties(path)
    except Exception as err:  # onnx raises protobuf's decode errors for files that are not ONNX
        raise ValueError(f"cannot load ONNX model {path}: {str(err).splitlines()[0][:200]}") from None
    return decode_metadata(path, {k: props[f"vggnet_{k}"] for k in METADATA if f"vggnet_{k}" in props})
