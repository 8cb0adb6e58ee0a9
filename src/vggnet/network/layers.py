"""The layers a VGG is made of and how they start: the convolutional trunk built from a configuration list
(:func:`make_features`), A-LRN's normalisation in the paper's units (:class:`CaffeLRN`), the initialisation
schemes (the paper's N(0, 0.01), Glorot's, torchvision's Kaiming; a head other than the paper's scaled for its
width) and the paper's pre-initialisation of a deeper net from a trained net A (:func:`preinit_from`); and how to
tell that the layers are being traced or exported."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..base.configs import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, PIXEL_SCALE, Layer, trunk_names

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


def init_weights(model: nn.Module, scheme: str = "kaiming", paper_head: bool | None = None) -> None:
    """Initialise convolutions and linear layers; biases zero, batch-norm scale one.

    Convolutions: ``"kaiming"`` torchvision's (He normal, fan-out), ``"normal"`` the paper's N(0, 0.01), ``"xavier"``
    Glorot & Bengio's (2010), uniform, ``"he"`` He et al.'s (2015), normal with std sqrt(2 / fan-in): it keeps the
    signal's scale through ReLUs, where Glorot's halves its second moment at each layer. Linear layers: Glorot's with
    ``"xavier"``, He's with ``"he"``; with ``"normal"`` and ``"kaiming"``, N(0, 0.01) on the paper's head
    (:func:`is_paper_head`: fc6 on a 7 x 7 pool, fc6 and fc7 4,096 wide), as both the paper and torchvision do, and
    on any other head a scale for each layer's width (:func:`init_linear`), since N(0, 0.01) on a narrow layer
    shrinks the signal by 0.01 * sqrt(fan-in / 2) (under 0.2 at 512 wide) and the gradients vanish. ``paper_head``:
    whether ``model``'s head is the paper's (default: from its ``pool_size`` and ``fc_width``, or for another module
    from its linear layers' widths).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(INIT_SCHEMES)}")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if paper_head is None:
        paper_head = (
            is_paper_head(model.pool_size, model.fc_width)
            if hasattr(model, "pool_size") and hasattr(model, "fc_width")
            else all(m.out_features == PAPER_FC_WIDTH for m in linears[:-1])
        )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "kaiming":
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
    for m in linears:
        scale = "xavier" if scheme == "xavier" else "paper" if paper_head and scheme != "he" else "fan-in"
        init_linear(m, scale, last=m is linears[-1])


PAPER_FC_WIDTH, PAPER_POOL = 4096, 7


def is_paper_head(pool_size: int, fc_width: int) -> bool:
    """Whether a head is the paper's: fc6 on a 7 x 7 pool, fc6 and fc7 4,096 wide (whatever the trunk's width)."""
    return pool_size == PAPER_POOL and fc_width == PAPER_FC_WIDTH


@torch.no_grad()
def init_linear(layer: nn.Linear, scale: str, last: bool = False) -> None:
    """A linear layer's weights (bias zero): ``"paper"`` N(0, 0.01); ``"xavier"`` Glorot's uniform; ``"fan-in"`` a
    scale for its width: He's normal (std sqrt(2 / fan-in)) where a ReLU follows, std sqrt(1 / fan-in) on the
    ``last`` layer (the class scores), so that the signal keeps its scale through a head of any width."""
    if scale == "paper":
        nn.init.normal_(layer.weight, 0.0, 0.01)
    elif scale == "xavier":
        nn.init.xavier_uniform_(layer.weight)
    elif scale == "fan-in":
        nn.init.normal_(layer.weight, 0.0, (1.0 if last else 2.0) ** 0.5 / layer.in_features**0.5)
    else:
        raise ValueError(f"unknown linear initialisation {scale!r}; expected paper, xavier or fan-in")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


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
