"""vggnet: the VGG networks of Simonyan & Zisserman (arXiv 1409.1556) in PyTorch."""

from .base.configs import CONFIGS, NAMES
from .inference.folding import fuse_batch_norm, prepare
from .inference.loading import load_model
from .network.layers import init_weights, preinit_from
from .network.model import (
    VGG,
    build,
    vgg11,
    vgg11_bn,
    vgg11_lrn,
    vgg11_lrn_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg16_conv1,
    vgg16_conv1_bn,
    vgg19,
    vgg19_bn,
)
from .network.weights import load_weights, save_weights
from .version import __version__

__all__ = [
    "__version__",
    "CONFIGS",
    "NAMES",
    "VGG",
    "build",
    "init_weights",
    "preinit_from",
    "load_weights",
    "save_weights",
    "vgg11",
    "vgg11_bn",
    "vgg11_lrn",
    "vgg11_lrn_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg16_conv1",
    "vgg16_conv1_bn",
    "vgg19",
    "vgg19_bn",
    "fuse_batch_norm",
    "load_model",
    "prepare",
]

# The subpackages ``import vggnet`` reaches on first use (``vggnet.losses.LPIPS``), each one importable (the
# package test imports every one)
SUBMODULES = ("base", "data", "engines", "export", "formats", "inference", "losses", "network", "training")


def __getattr__(name: str):
    """Submodules on first use (``vggnet.losses.LPIPS`` after ``import vggnet``), without importing all at start."""
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vggnet' has no attribute {name!r}")
