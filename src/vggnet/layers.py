"""The layers a VGG is made of and how they start: the convolutional trunk built from a configuration list
(:func:`make_features`), A-LRN's normalisation in the paper's units (:class:`CaffeLRN`), the initialisation
schemes (the paper's N(0, 0.01), Glorot's, torchvision's Kaiming) and the paper's pre-initialisation of a deeper
net from a trained net A (:func:`preinit_from`); and how to tell that the layers are being traced or exported."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base.configs import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, PIXEL_SCALE, Layer, trunk_names

INIT_SCHEMES = ("kaiming", "normal", "xavier", "he")


def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """``F.local_response_norm`` for N x C x H x W and an odd window, 2.2x faster to train through: PyTorch's sums
    the squares with a 3-D average pool, whose backward made A-LRN train 2.3x slower than net A; here the window is
    a sum of shifted channel slices, equal within float rounding."""
    if x.dim() != 4 or size % 2 == 0:
        return F.local_response_norm(x, size, alpha, beta, k)
    half = size // 2
    squares = F.pad(x * x, (0, 0, 0, 0, half, half))
    window = sum(squares[:, i : i + x.shape[1]] for i in range(size))
    return x / (k + alpha / size * window).pow(beta)


torch.fx.wrap("local_response_norm")  # one node for fx and torchvision's feature extraction, as F's function was


class CaffeLRN(nn.LocalResponseNorm):
    """AlexNet's LRN with the paper's constants, which hold in Caffe's pixel units (images 0-255 minus the mean).

    A net fed images in other units (vggnet's default: [0, 1] minus the mean, 255 times smaller) has activations
    ``input_scale`` times smaller, where the paper's alpha would make the layer a constant 2^-0.75. Scaling alpha by
    ``input_scale ** 2`` makes it compute exactly the paper's normalisation, its output ``input_scale`` times
    smaller: what Caffe's layer computes on the same image in pixel units, in this net's units."""

    def __init__(self, input_scale: float = PIXEL_SCALE) -> None:
        super().__init__(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)
        self.set_input_scale(input_scale)

    def set_input_scale(self, input_scale: float) -> None:
        if not input_scale > 0:
            raise ValueError(f"input_scale must be positive, got {input_scale!r}")
        self.input_scale = float(input_scale)
        self.alpha = LRN_ALPHA * LRN_SIZE * self.input_scale**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_scale={self.input_scale:g}"


def input_scale_of(std: Sequence[float]) -> float:
    """Caffe pixel levels per unit of a net's input for images normalised by ``std`` (in [0, 1] units): 255 * std.
    Per-channel stds are averaged (exact when they are equal, as for gray images or the paper's mean-only)."""
    if not std or any(not s > 0 for s in std):
        raise ValueError(f"a normalisation's std must be positive, got {list(std)}")
    return PIXEL_SCALE * sum(std) / len(std)


def make_features(
    config: Sequence[Layer],
    in_channels: int = 3,
    batch_norm: bool = False,
    width: float = 1.0,
    ceil_mode: bool = False,
    input_scale: float = PIXEL_SCALE,
) -> tuple[nn.Sequential, list[str], int]:
    """Build the convolutional trunk; return it, the Caffe name of each of its modules and its output width.
    ``ceil_mode``: pooled sizes rounded up, as in the authors' Caffe (28 -> 14 -> 7 -> 4 -> 2 -> 1), instead of
    torchvision's rounding down (which needs at least 32 pixels for five pools)."""
    names = trunk_names(list(config), batch_norm)
    convs = iter((item, 3) if isinstance(item, int) else tuple(item) for item in config if not isinstance(item, str))
    layers: list[nn.Module] = []
    channels = in_channels
    for name in names:
        if name.startswith("pool"):
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
        elif name.startswith("norm"):
            layers.append(CaffeLRN(input_scale))
        elif name.startswith("conv"):
            out, kernel = next(convs)
            out = max(1, round(out * width))
            layers.append(nn.Conv2d(channels, out, kernel_size=kernel, padding=kernel // 2))
            channels = out
        elif name.startswith("bn"):
            layers.append(nn.BatchNorm2d(channels))
        else:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers), names, channels


def init_weights(model: nn.Module, scheme: str = "kaiming") -> None:
    """Initialise convolutions and linear layers; biases zero, batch-norm scale one.

    ``"kaiming"``: torchvision's scheme (He normal, fan-out, on convolutions; N(0, 0.01) on linear layers).
    ``"normal"``: the paper's, N(0, 0.01) everywhere. ``"xavier"``: Glorot & Bengio (2010), uniform. ``"he"``: He
    et al. (2015), normal with std sqrt(2 / fan-in) on every layer: it keeps the signal's scale through ReLUs, where
    Glorot's halves its second moment at each layer.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(INIT_SCHEMES)}")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "kaiming" and isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def exporting() -> bool:
    check = getattr(torch.compiler, "is_exporting", None)  # PyTorch 2.5 and later
    return bool(check()) if check is not None else False


def fx_tracing() -> bool:
    """Whether torch.fx is tracing symbolically (torchvision's feature extraction), not torch.export or compile."""
    fx = torch.fx._symbolic_trace
    check = getattr(fx, "is_fx_symbolic_tracing", None)  # newer PyTorch; older ones only have is_fx_tracing
    return check() if check is not None else fx.is_fx_tracing()


# The layers the paper copies from a trained net A into a deeper net (Sect. 3.1).
PREINIT_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8")


@torch.no_grad()
def preinit_from(model: nn.Module, net_a: nn.Module) -> list[str]:
    """Copy net A's first four convolutions and three FC layers into ``model``, a deeper VGG (the paper's
    pre-initialisation); return the names copied.

    Layers are matched by Caffe name (A's conv3_2 goes to the deeper net's conv3_2); a following batch-norm is copied
    with its convolution when both nets have one.
    """
    copied = []
    for name in PREINIT_LAYERS:
        names = [name] + (
            [f"bn{name[4:]}"] if name.startswith("conv") and model.batch_norm and net_a.batch_norm else []
        )
        for layer_name in names:
            src, dst = net_a.layer(layer_name), model.layer(layer_name)
            src_state, dst_state = src.state_dict(), dst.state_dict()
            for key, tensor in src_state.items():
                if dst_state[key].shape != tensor.shape:
                    raise ValueError(
                        f"cannot pre-initialise {layer_name}.{key}: net A has {tuple(tensor.shape)}, "
                        f"the target has {tuple(dst_state[key].shape)}"
                    )
            dst.load_state_dict(src_state)
            copied.append(layer_name)
    return copied
