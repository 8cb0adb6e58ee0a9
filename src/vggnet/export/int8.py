"""Static int8 quantisation of an exported ONNX model (onnxruntime's tools, QDQ, per-channel weights): calibrated on
images of the data, checked on held-out ones against the float32 model, refused where the two disagree too often."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..base.settings import AT_LEAST_ONE, setting
from ..data.sources import Source
from ..engines.onnxruntime_engine import OnnxModel
from ..inference.folding import prepare
from ..inference.loading import Loaded
from ..inference.protocols import label_map
from .metadata import exported_metadata, write_metadata

INT8_SCHEMES = ("auto", "u8s8", "u8s8-reduced", "u8u8")


@dataclass
class Int8Settings:
    """Static int8 quantisation: ``calibration`` images (of ``data``, or ``calibrate_on``) set the activation ranges;
    ``check`` images (labelled, held out: ``check_on``) compare the int8 model with the float32 one. ``int8_scheme``:
    activations and weights u8 x s8 (fast where the CPU has VNNI), u8 x s8 with 7-bit weights (``u8s8-reduced``: no
    saturation in AVX2's u8 x s8 products) or u8 x u8; ``auto`` picks u8s8 where this CPU has VNNI, u8s8-reduced
    elsewhere."""

    data: str = setting(
        "fashion-mnist",
        "int8: an image folder (train/ calibrates, val/ checks; or any images, shuffled) or fashion-mnist (training "
        "set calibrates, test set checks)",
    )
    calibration: int = setting(500, "int8: calibration images", AT_LEAST_ONE, metavar="N")
    check: int = setting(1000, "int8: held-out images checked", AT_LEAST_ONE, metavar="N")
    int8_scheme: str = setting(
        "auto",
        "int8: u8s8 on CPUs with VNNI, u8s8-reduced (7-bit weights) on AVX2 ones (auto picks)",
        choices=INT8_SCHEMES,
    )
    min_agreement: float = setting(0.95, "least top-1 agreement with float32 on the held-out images", flag=False)
    calibrate_on: Source | None = setting(None, "calibration images (default: from data)", flag=False)
    check_on: Source | None = setting(None, "held-out images (default: from data)", flag=False)

    def with_sources(self, channels: int) -> Int8Settings:
        """These settings with their calibration and check images opened from ``data`` where not given."""
        if self.calibrate_on is not None and self.check_on is not None:
            return self
        calibrate_on, check_on = int8_sources(self.data, self.calibration, self.check, channels)
        return replace(self, calibrate_on=calibrate_on, check_on=check_on)


def int8_sources(data: str, calibration: int, check: int, channels: int) -> tuple[Source, Source]:
    """Calibration and held-out check images for int8: Fashion-MNIST's training and test sets; a folder's train/ and
    val/; or any other folder of images (flat, or in folders of any names: calibration needs no labels), shuffled
    once, the first ``calibration`` calibrating and the next ``check`` checking."""
    from ..data.sources import any_images, files_source, open_source

    if data == "fashion-mnist":
        return (
            open_source(data, 64, split="train", channels=channels),
            open_source(data, 64, split="test", channels=channels),
        )
    root = Path(data)
    if (root / "train").is_dir() and (root / "val").is_dir():
        parts = [any_images(root / "train"), any_images(root / "val")]
        return tuple(files_source(str(root / n), c, s, channels=channels) for n, (c, s) in zip(("train", "val"), parts))
    classes, samples = any_images(root)
    if len(samples) <= calibration:
        raise ValueError(
            f"{root} holds {len(samples)} images: int8 calibrates on --calibration {calibration} and checks on the "
            "rest, so give more images, a smaller --calibration, or DIR/train and DIR/val"
        )
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    picked = [samples[i] for i in order]
    held_out = picked[calibration : calibration + check]
    return (
        files_source(f"{root} (calibration)", classes, picked[:calibration], channels=channels),
        files_source(f"{root} (held out)", classes, held_out, channels=channels),
    )


def resolve_scheme(scheme: str) -> str:
    if scheme not in INT8_SCHEMES:
        raise ValueError(f"unknown int8 scheme {scheme!r}; expected one of {', '.join(INT8_SCHEMES)}")
    from ..base.hardware import cpu_has_vnni

    return scheme if scheme != "auto" else ("u8s8" if cpu_has_vnni() else "u8s8-reduced")


def export_int8(loaded: Loaded, float_path: Path, path: Path, settings: Int8Settings) -> dict[str, object]:
    """Quantise the float32 ONNX model statically (QDQ, per-channel weights, onnxruntime's tools) into ``path`` and
    check it on held-out images against the float32 model; ``ValueError`` (and ``path`` removed) when they disagree
    too often."""
    scheme = resolve_scheme(settings.int8_scheme)
    if settings.calibration < 1 or settings.check < 1:
        raise ValueError("--calibration and --check must be positive image counts")
    settings = settings.with_sources(loaded.model.in_channels)
    calibration = _Calibration(settings.calibrate_on, settings.calibration, loaded)
    quantize_onnx(float_path, path, calibration, scheme)
    write_metadata(path, exported_metadata(loaded, loaded.model, f"int8 {scheme}"))
    check = check_agreement(loaded, OnnxModel(path), settings.check_on, settings.check, loaded.default_scale)
    if check["agreement"] < settings.min_agreement:
        path.unlink()
        raise ValueError(
            f"the int8 model agrees with the float32 one on {100 * check['agreement']:.1f}% of "
            f"{check['images']} held-out images, below {100 * settings.min_agreement:.0f}%: not written "
            "(try more --calibration images, or --int8-scheme u8u8)"
        )
    return {"path": str(path), "scheme": scheme, **check}


def quantize_onnx(float_path: Path, path: Path, calibration, scheme: str) -> None:
    """onnxruntime's static quantisation of a float32 model: its pre-processing (shape inference, graph fusions),
    then QDQ with per-channel weights; ``calibration`` is a CalibrationDataReader (``get_next()``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            calibration,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QUInt8 if scheme == "u8u8" else QuantType.QInt8,
            reduce_range=scheme == "u8s8-reduced",
        )


class _Calibration:
    """onnxruntime's CalibrationDataReader over a Source: images rescaled to Q and normalised, up to ``count``."""

    def __init__(self, source: Source, count: int, loaded: Loaded) -> None:
        self.batches = source.batches()
        self.left, self.loaded = count, loaded

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.left <= 0:
            return None
        batch = next(self.batches, None)
        if batch is None:
            return None
        images = batch[0][: self.left]
        self.left -= len(images)
        return {"image": self.loaded.inputs(images).numpy()}


@torch.inference_mode()
def check_agreement(loaded: Loaded, runner, source: Source, count: int, q: int) -> dict[str, object]:
    """Top-1 agreement of the exported model with the PyTorch model on ``count`` images at Q = ``q`` (no labels
    needed), and the accuracy of both where the images' labels name the model's classes (``None`` otherwise, with
    the reason under ``accuracy_note``)."""
    model = prepare(loaded.model)
    truth_of, note = None, None
    if not source.classes:
        note = f"the images of {source.name} are not in class folders"
    else:  # by name only: folders of other names say nothing of accuracy
        try:
            truth_of, note = label_map(loaded, source)
        except ValueError:
            note = f"{source.name}'s classes ({', '.join(source.classes[:4])}) are not the model's"
    agree = right_float = right_int8 = seen = 0
    for images, labels in source.batches():
        images, labels = images[: count - seen], labels[: count - seen]
        x = loaded.inputs(images, q)
        mine = model.score_map(x.contiguous(memory_format=torch.channels_last)).mean((2, 3)).argmax(1)
        theirs = runner(x).argmax(1)
        agree += int((mine == theirs).sum())
        if truth_of is not None:
            truth = truth_of[labels]
            right_float += int((mine == truth).sum())
            right_int8 += int((theirs == truth).sum())
        seen += len(labels)
        if seen >= count:
            break
    if not seen:
        raise ValueError(f"no readable image in {source.name} to check the int8 model on")
    measured = truth_of is not None
    return {
        "images": seen,
        "agreement": agree / seen,
        "float_accuracy": right_float / seen if measured else None,
        "int8_accuracy": right_int8 / seen if measured else None,
        "accuracy_note": note,
    }
