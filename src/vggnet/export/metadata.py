"""What an exported model says about itself: vggnet's metadata (classes, normalisation, crop and test scale, sizes,
precision; :data:`~vggnet.engines.exported.METADATA`), written as ``vggnet_*`` properties of the ONNX file and as
``vggnet`` entries of OpenVINO's rt_info. Export writes it here; the engines only read it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..engines.exported import METADATA
from ..engines.onnxruntime_engine import read_onnx_metadata
from ..inference.loading import Loaded
from ..network.model import VGG


def exported_metadata(loaded: Loaded, model: VGG, precision: str) -> dict[str, str]:
    """The ``vggnet_*`` properties of ``model`` exported from ``loaded`` in ``precision``."""
    values = {
        "classes": loaded.classes,
        "mean": loaded.mean,
        "std": loaded.std,
        "crop": loaded.crop,
        "scale": loaded.default_scale,
        "pad": loaded.pad,
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "min_size": model.min_input(model.pool_size),
        "source": loaded.source,
        "precision": precision,
    }
    return {f"vggnet_{k}": json.dumps(v) for k, v in values.items() if k in METADATA}


def write_metadata(path: str | os.PathLike, properties: dict[str, str]) -> None:
    """Add metadata properties to the ONNX file at ``path`` in place (the caller writes it atomically)."""
    import onnx

    model = onnx.load(str(path))
    for key, value in properties.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def write_ir_metadata(model: Any, meta: dict[str, Any]) -> None:
    """vggnet's metadata as ``vggnet`` entries of an OpenVINO model's rt_info."""
    for key, value in meta.items():
        model.set_rt_info(json.dumps(value), ["vggnet", key])


def save_ir(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> list[Path]:
    """The ONNX model at ``onnx_path`` as OpenVINO IR (``.xml`` and ``.bin``), its weights kept as they are (float32,
    or the int8 file's quantised ones; not compressed to float16), its metadata in rt_info. Returns both files."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    write_ir_metadata(model, read_onnx_metadata(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    xml = Path(xml_path)
    return [xml, xml.with_suffix(".bin")]
