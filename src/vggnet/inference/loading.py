"""Models ready for inference: a model comes back from a checkpoint, a weights file of any origin or an exported
model with what is needed to feed it (:class:`Loaded`: class names, normalisation, crop and test scale), and a
command's choice of model is one dataclass of flags (:class:`ModelChoice`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.configs import canonical_name, resolve
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, NAMED_NORMALIZATIONS, Normalization
from ..base.settings import RUNTIME, setting
from ..formats import WeightsFile, identify
from ..network.layers import init_weights, is_paper_head
from ..network.model import VGG, build
from ..network.weights import apply_weights, read_weights
from .geometry import rescale


@dataclass
class ModelChoice:
    """Which model a command runs: weights (several, for an ensemble, where a command takes them), the architecture
    of weights that do not record one, and the device."""

    weights: list[str] = setting(
        [],
        "a vggnet checkpoint (.pt) or weights (.safetensors), an exported .onnx; or any weights file, URL or "
        "'torchvision' with --arch (eval: repeat for an ensemble, posteriors averaged)",
        repeat=True,
        metavar="FILE",
    )
    arch: str | None = setting(None, "architecture of weights that do not say (e.g. torchvision's .pth files)")
    device: str = setting("cpu", "cpu, cuda or cuda:N", role=RUNTIME)
    engine: str = setting(
        "auto",
        "what runs an exported model (.onnx, OpenVINO's .xml): onnxruntime, openvino, or auto, the fastest installed "
        "one for the model's kind on this CPU (measured once, remembered); torch for weights",
        choices=("auto", "torch", "onnxruntime", "openvino"),
        role=RUNTIME,
    )
    normalize: str = setting(
        "auto",
        "the input the weights expect, where their file does not say it: caffe (BGR, 0-255, minus the mean pixel: a "
        "Caffe port saved with torchvision's keys), vggface, imagenet (torchvision's) or tf ([-1, 1]); auto: what "
        "the file says or implies",
        choices=("auto", *NAMED_NORMALIZATIONS),
    )
    precision: str = setting(
        "f32",
        "arithmetic of an exported float model: f32, or bf16 through OpenVINO (its own default on CPUs with bf16 "
        "units: about twice as fast, no longer float32)",
        choices=("f32", "bf16"),
    )

    def load(self, one: str | None = None) -> list[Loaded]:
        """The models, loaded; ``one``: the command takes exactly one (its name, for the message)."""
        if not self.weights:
            raise ValueError(
                "give the model with --weights FILE (a vggnet checkpoint or weights file, an exported .onnx, or any "
                "weights file, URL or 'torchvision' together with --arch)"
            )
        if one and len(self.weights) > 1:
            raise ValueError(
                f"{one} takes one model, got {len(self.weights)} --weights ({', '.join(self.weights)}); give one "
                "(vggnet eval averages several)"
            )
        from ..base.devices import pick_device

        pick_device(self.device)
        return [
            load_model(w, self.arch, engine=self.engine, precision=self.precision, normalize=self.normalize)
            for w in self.weights
        ]


@dataclass
class Loaded:
    """A model with what is needed to feed it: class names, normalisation, the training crop size, and the test
    geometry it was validated at: an image rescaled isotropically to side ``scale`` (Q), ``pad`` zeros added around
    it (Fashion-MNIST models trained on its 28 x 28 images stored as 32 x 32), then the protocol's crops."""

    model: VGG
    classes: list[str]
    mean: list[float]
    std: list[float]
    crop: int
    source: str
    scale: int | None = None  # the test scale Q the model was validated at, where its file says
    pad: int = 0
    has_head: bool = True  # False: the file held the convolutional trunk only (fc6-fc8 untrained)

    def check_head(self, use: str) -> None:
        """``ValueError`` where ``use`` needs class scores and the file held the trunk alone."""
        if not self.has_head:
            raise ValueError(
                f"{self.source} holds the convolutional trunk only (no fc6-fc8, as Keras's include_top=False): it "
                f"gives features of conv and pool layers, losses and a start for fine-tuning, not {use}"
            )

    def inputs(self, images: torch.Tensor, q: int | None = None) -> torch.Tensor:
        """uint8 images N x C x H x W as this model takes them at test scale Q (default: its own)."""
        return rescale(images, q or self.default_scale, self.mean, self.std, self.pad)

    @property
    def default_scale(self) -> int:
        """Q for a single test scale: the one the model was validated at; else the paper's S = 256 for 224 crops,
        the crop itself for small images."""
        return self.scale or (256 if self.crop == 224 else self.crop)


def imagenet_classes() -> list[str]:
    from torchvision.models import VGG16_Weights

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def load_model(
    source: str | os.PathLike,
    arch: str | None = None,
    arch_if_unknown: bool = False,
    engine: str = "auto",
    precision: str = "f32",
    normalize: str | None = None,
) -> Loaded:
    """Rebuild a model from a vggnet checkpoint (``.pt``), a vggnet ``.safetensors`` file, another framework's VGG
    file (the authors' ``.caffemodel``, Keras's ``.h5``/``.keras``, the classic PyTorch ports: they say their
    architecture) or any weights file or URL together with ``arch`` (the class count and head are read from the
    weights), in eval mode, for RGB images. An exported model (``.onnx``, or OpenVINO's ``.xml``) comes back
    through ``engine`` (``onnxruntime``, ``openvino``, or ``auto``: the fastest installed one for its kind on this
    CPU, :mod:`vggnet.engines.select`) with the same interface for evaluation; ``precision`` ``bf16`` asks OpenVINO
    for bf16 arithmetic. ``normalize`` names the input of weights whose file does not say it (``caffe`` ...).

    ``arch_if_unknown``: ``arch`` is only a default, for files that do not record their architecture."""
    if is_exported(source):
        return _load_exported(source, engine, precision)
    if engine not in ("auto", "torch"):
        raise ValueError(
            f"--engine {engine} runs exported models; export {source} first (vggnet export), or use --engine torch"
        )
    if precision != "f32":
        raise ValueError(
            f"--precision {precision} is the arithmetic OpenVINO runs an exported model in; {source} is weights, which "
            "PyTorch runs in float32: export it first (vggnet export --openvino), or leave --precision out"
        )
    if arch is not None:
        arch = canonical_name(*resolve(arch))
    return load_found(read_weights(source, arch, normalize), arch, arch_if_unknown)


def load_found(found: WeightsFile, arch: str | None = None, arch_if_unknown: bool = False) -> Loaded:
    """The model of weights already read (:func:`vggnet.network.weights.read_weights`), as :func:`load_model` gives
    it: built in the shape the file says (or ``arch``'s, with the file's head), the weights put in by
    :func:`~vggnet.network.weights.apply_weights`, in eval mode."""
    with torch.device("meta"):  # no random initialisation to throw away (1.4 s for VGG-16 on 2 cores)
        model = _model_for(found, found.source, arch, arch_if_unknown)
    model = model.to_empty(device="cpu")
    if found.trunk_only:  # the file has no head: the one built stays, initialised as a new one is
        init_weights(model.classifier, paper_head=is_paper_head(model.pool_size, model.fc_width))
    found = apply_weights(model, found)
    model.eval()
    if found.normalization is None:  # the file does not say: ImageNet's for RGB, [-1, 1] for other channels
        three = model.in_channels == 3
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if three else ([0.5] * model.in_channels,) * 2
        model.set_normalization(Normalization(mean, std))
    input_scale = (found.config or {}).get("input_scale")
    if input_scale is not None:  # a vggnet file says its LRN's units itself
        model.set_input_scale(input_scale)
    classes = found.classes or (
        imagenet_classes() if model.num_classes == 1000 else [f"class {i}" for i in range(model.num_classes)]
    )
    if len(classes) != model.num_classes:
        raise ValueError(f"{found.source} names {len(classes)} classes for a model with {model.num_classes}")
    mean, std = list(model.normalization.mean), list(model.normalization.std)
    loaded = Loaded(model, list(classes), mean, std, found.crop or 224, found.source, found.scale, found.pad)
    loaded.has_head = not found.trunk_only
    return loaded


def _model_for(found: WeightsFile, source: str | os.PathLike, arch: str | None, arch_if_unknown: bool) -> VGG:
    if found.config is not None and (arch_if_unknown or arch in (None, found.config.get("arch"))):
        return VGG.from_config(found.config)  # the file's own shape (width, head) for its architecture
    if arch is None:
        raise ValueError(f"{source} does not say which architecture it holds; give --arch (e.g. vgg16)")
    return _build_for(arch, found)


def is_exported(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a model vggnet exported, to run through an engine, not weights to read
    (:func:`vggnet.formats.identify` decides)."""
    return identify(source).exported


def _load_exported(source: str | os.PathLike, engine: str, precision: str) -> Loaded:
    from ..engines.select import open_exported

    if not Path(str(source)).is_file():
        raise ValueError(f"no such exported model: {source}")
    if engine == "torch":
        raise ValueError(f"{source} is an exported model: it runs through onnxruntime or openvino, not torch")
    runner = open_exported(source, engine, precision=precision)
    meta = runner.meta
    crop, scale, pad = int(meta["crop"]), meta.get("scale"), int(meta.get("pad") or 0)
    return Loaded(runner, list(meta["classes"]), list(meta["mean"]), list(meta["std"]), crop, str(source), scale, pad)


def _build_for(arch: str, found: WeightsFile) -> VGG:
    """``arch`` with the class count, input channels and head the weights have."""
    state = found.state
    head, fc6, conv = (state.get(k) for k in ("classifier.6.weight", "classifier.0.weight", "features.0.weight"))
    if head is None or fc6 is None or conv is None:
        raise ValueError(f"{found.source} holds no VGG weights (features.0, classifier.0 and classifier.6)")
    with torch.device("meta"):
        trunk = build(arch).num_features
    pool = math.isqrt(fc6.shape[1] // trunk)
    if pool < 1 or pool * pool * trunk != fc6.shape[1]:
        pool = 7  # no head of arch fits: build the paper's, and the key check names what differs
    return build(arch, num_classes=head.shape[0], in_channels=conv.shape[1], fc_width=head.shape[1], pool_size=pool)
