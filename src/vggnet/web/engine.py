"""What a vggnet server runs: a loaded model (PyTorch weights, or an exported model through onnxruntime or OpenVINO),
the test geometry it was validated at, and the three things asked of it: bring an image to that geometry, classify a
batch, explain one image. It raises its own errors (``BadImage``, :class:`NotExplainable`); the apps say what they
mean in HTTP (:mod:`vggnet.web.errors`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..base.pictures import data_url, to_png
from ..data.images import check_bytes, decode_bytes, to_gray
from ..inference.folding import prepare
from ..inference.geometry import centre_window
from ..inference.loading import Loaded, load_model
from ..network.model import VGG
from .settings import MAX_IMAGE_PIXELS


class NotExplainable(ValueError):
    """The model cannot explain its answers (an exported model: Grad-CAM needs the PyTorch weights)."""


@dataclass
class Engine:
    """A model ready to serve. ``mirror``: average each image's posteriors with its mirror image's, as the paper's
    validation (and vggnet's ``val_flip``) does."""

    loaded: Loaded
    net: torch.nn.Module
    mirror: bool = True
    max_pixels: int = MAX_IMAGE_PIXELS

    @classmethod
    def load(
        cls,
        weights: str,
        arch: str | None = None,
        mirror: bool = True,
        max_pixels: int = MAX_IMAGE_PIXELS,
        engine: str = "auto",
        precision: str = "f32",
        normalize: str | None = None,
    ) -> Engine:
        """The model at ``weights``; an exported one through ``engine`` (``auto``: the fastest installed here);
        ``normalize``: the input of weights whose file does not say it."""
        loaded = load_model(weights, arch, engine=engine, precision=precision, normalize=normalize)
        loaded.check_head("a classification service")
        net = prepare(loaded.model) if isinstance(loaded.model, VGG) else loaded.model
        return cls(loaded, net, mirror, max_pixels)

    @property
    def channels(self) -> int:
        return self.loaded.model.in_channels

    @property
    def input_shape(self) -> list[int]:
        """One image as the model takes it: C x crop x crop."""
        return [self.channels, self.loaded.crop, self.loaded.crop]

    def default_threads(self, cores: int) -> int:
        """Threads for the model: all cores for a model that costs more than a GMAC an image (VGG-16 at 224: the
        forward pass dominates, the HTTP side is noise); the cores but one for a small one, whose forward passes
        would otherwise fight the event loop and the image decoding for the cores (BENCHMARKS.md)."""
        if not isinstance(self.loaded.model, VGG):
            return cores  # onnxruntime runs its own threads
        from ..network.sizes import summarize

        costly = summarize(self.loaded.model, self.loaded.crop).gmacs > 1.0
        return cores if costly else max(1, cores - 1)

    def fix_batches(self, mode: str, max_batch: int, measure: bool = True) -> list:
        """OpenVINO only: fixed-shape copies of the model for the batches the batcher forms most, kept as ``mode``
        says (:func:`vggnet.engines.fixed.fix_batches`); what became of each batch size."""
        if getattr(self.loaded.model, "engine", None) != "openvino":
            return []
        from ..engines.fixed import fix_batches

        return fix_batches(self.loaded.model, tuple(self.input_shape), max_batch, mode, measure)

    @property
    def platform(self) -> str:
        if isinstance(self.loaded.model, VGG):
            return "pytorch_libtorch"
        return {"openvino": "openvino"}.get(self.loaded.model.engine, "onnxruntime_onnx")

    def decode(self, data: bytes) -> torch.Tensor:
        """An image's encoded bytes to uint8 C x H x W with the model's channels; ``BadImage`` (with its kind) for
        anything that is not a whole image of a sane size, checked from its header before it is decoded."""
        check_bytes(data, self.max_pixels)
        img = decode_bytes(data)
        return to_gray(img) if self.channels == 1 else img

    def full_view(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 C x H x W at the test scale: rescaled to Q, padded, normalised (1 x C x H' x W')."""
        return self.loaded.inputs(img[None])

    def preprocess(self, data: bytes) -> torch.Tensor:
        """An encoded image to the model's input, C x crop x crop: rescaled to its test scale Q, padded as in its
        validation, the centre crop taken."""
        x = self.full_view(self.decode(data))
        return centre_window(x, self.loaded.crop)[0]

    @torch.inference_mode()
    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        """Posteriors N x K of a batch of model inputs N x C x crop x crop."""
        x = batch.contiguous(memory_format=torch.channels_last)
        probs = F.softmax(self.net(x).float(), 1)
        if self.mirror:
            probs = (probs + F.softmax(self.net(x.flip(3)).float(), 1)) / 2
        return probs

    def explain(self, data: bytes, layer: str = "relu5_3") -> dict[str, object]:
        """The top class of an image, its Grad-CAM map and the dense score map of that class, as PNGs (data URLs)
        the size of the image at its test scale."""
        from ..inference.gradcam import grad_cam_of_centre

        if not isinstance(self.loaded.model, VGG):
            raise NotExplainable(
                f"{self.loaded.source} is an exported model: explaining needs the PyTorch weights it came from"
            )
        x = self.full_view(self.decode(data)).contiguous(memory_format=torch.channels_last)
        crop, p = min(self.loaded.crop, *x.shape[-2:]), self.loaded.pad
        probs = self.classify(centre_window(x, crop))[0]
        best = int(probs.argmax())
        heat = grad_cam_of_centre(self.net, x, crop, best, layer, p).cpu()
        with torch.inference_mode():
            dense = F.softmax(self.net.score_map(x).float(), 1)[0, best]
        h, w = x.shape[-2:]
        dense = F.interpolate(dense[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        dense = dense[p : h - p, p : w - p]  # the zeros added around the image are not part of it
        h, w = h - 2 * p, w - 2 * p
        return {
            "class": self.loaded.classes[best],
            "probability": float(probs[best]),
            "cam": data_url(to_png(heat, "jet", stretch=False)),
            "dense": data_url(to_png(dense, "jet", stretch=False)),
            "size": [h, w],
        }
