"""The reference packages' trunks, stubbed with shared random weights.

lpips, DISTS_pytorch and piq build torchvision's VGG with downloaded ImageNet weights when constructed, which
cannot happen here: :func:`stub_torchvision` makes ``torchvision.models.vgg16``/``vgg19`` (and piq's own imports of
them) return a trunk whose ``features`` hold the weights of :func:`shared_vgg`, the vggnet net the tests give
vggnet's metrics. Both sides then compute on the same weights, and any difference is the metrics' own.
"""

from __future__ import annotations

import sys

import torch
import torchvision
from torch import nn

import vggnet

_NETS: dict[str, vggnet.VGG] = {}
CONFIGS = {"vgg16": "D", "vgg19": "E"}


def shared_vgg(arch: str = "vgg16") -> vggnet.VGG:
    """A full-width vggnet VGG with random trunk weights, the same on every call (a small head: only the trunk is
    compared). Biases drawn too, so that no layer is trivially centred."""
    if arch not in _NETS:
        with torch.random.fork_rng():
            torch.manual_seed({"vgg16": 16, "vgg19": 19}[arch])
            model = vggnet.build(arch, pool_size=1, fc_width=8).eval()
            with torch.no_grad():
                for m in model.features:
                    if isinstance(m, nn.Conv2d):
                        m.bias.uniform_(-0.05, 0.05)
        _NETS[arch] = model
    return _NETS[arch]


class _TorchvisionTrunk(nn.Module):
    """What the packages read from ``torchvision.models.vgg16(pretrained=True)``: its ``features``."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        cfg = torchvision.models.vgg.cfgs[CONFIGS[arch]]
        self.features = torchvision.models.vgg.make_layers(cfg, batch_norm=False)
        state = shared_vgg(arch).state_dict()
        self.features.load_state_dict({k[len("features.") :]: v.clone() for k, v in state.items()
                                       if k.startswith("features.")})  # fmt: skip


def stub_torchvision(monkeypatch) -> None:
    """torchvision's vgg16/vgg19 (wherever the packages bound them) build the shared trunks, never download."""
    for arch in CONFIGS:

        def build(*args, arch=arch, **kwargs):
            return _TorchvisionTrunk(arch)

        monkeypatch.setattr(torchvision.models, arch, build)
        monkeypatch.setattr(torchvision.models.vgg, arch, build)
        if "piq.perceptual" in sys.modules:
            monkeypatch.setattr(sys.modules["piq.perceptual"], arch, build)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference relative to the reference's largest magnitude."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))
