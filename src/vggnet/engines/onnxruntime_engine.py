"""Exported ONNX models (float32 or int8) run through onnxruntime behind the interface evaluation uses, so that the
deployed artefact is what ``vggnet eval`` and ``vggnet predict`` measure.

An exported model is the paper's dense classifier: images of any size in, the spatial mean of the class score map
out. Its metadata (``vggnet_*`` properties) carries what is needed to feed it: classes, normalisation, crop.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

METADATA = (
    "classes",
    "mean",
    "std",
    "crop",
    "scale",
    "pad",
    "in_channels",
    "num_classes",
    "min_size",
    "source",
    "precision",
)


class OnnxModel:
    """An onnxruntime session with the parts of :class:`vggnet.VGG`'s interface that evaluation uses: calling it
    gives class scores; ``score_map`` gives them as a 1 x 1 map (the session already averaged the dense map)."""

    batch_norm = False
    engine = "onnxruntime"
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
        self.meta = {k: json.loads(props[f"vggnet_{k}"]) for k in METADATA if f"vggnet_{k}" in props}
        missing = [k for k in ("classes", "mean", "std", "crop", "in_channels", "num_classes") if k not in self.meta]
        if missing:
            raise ValueError(f"{path} was not exported by vggnet: its metadata lacks {', '.join(missing)}")
        self.input = self.session.get_inputs()[0].name
        self.num_classes = int(self.meta["num_classes"])
        self.in_channels = int(self.meta["in_channels"])
        self.min_size = int(self.meta.get("min_size", 32))
        self.path = str(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        scores = self.session.run(None, {self.input: x.detach().float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(scores)

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[:, :, None, None]

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxModel:
        device = args[0] if args else kwargs.get("device")
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError("ONNX models run on the CPU here (onnxruntime's CPU execution provider); use --device cpu")
        return self


def onnx_metadata(**values: Any) -> dict[str, str]:
    """``vggnet_*`` metadata properties for an exported model."""
    return {f"vggnet_{k}": json.dumps(v) for k, v in values.items() if k in METADATA}


def write_metadata(path: str | os.PathLike, properties: dict[str, str]) -> None:
    """Add metadata properties to the ONNX file at ``path`` in place (the caller writes it atomically)."""
    import onnx

    model = onnx.load(str(path))
    for key, value in properties.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``vggnet_*`` properties of an ONNX file, decoded."""
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as err:  # onnx raises protobuf's decode errors for files that are not ONNX
        raise ValueError(f"cannot load ONNX model {path}: {str(err).splitlines()[0][:200]}") from None
    return {k: json.loads(props[f"vggnet_{k}"]) for k in METADATA if f"vggnet_{k}" in props}
