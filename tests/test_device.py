"""The model's behaviour on the device named by VGGNET_TEST_DEVICE (cpu by default; benchmarks/gpu_check.sh runs
these on CUDA)."""

import os

import pytest
import torch
import torch.nn.functional as F
import torchvision
from helpers import tiny

from vggnet import build
from vggnet.inference.folding import fuse_batch_norm
from vggnet.inference.geometry import posteriors

DEVICE = torch.device(os.environ.get("VGGNET_TEST_DEVICE", "cpu"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")


def close(a, b, tol=1e-4):
    assert ((a.float() - b.float()).norm() / b.float().norm()).item() < tol


@pytest.fixture(autouse=True)
def _full_precision():
    # TF32 would make the float32 comparisons below loose on Ampere and later GPUs.
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("channels_last", [False, True])
def test_score_map_and_forward_agree(channels_last):
    model = tiny("vgg16_bn").to(DEVICE)
    x = torch.randn(2, 3, 224, 224, device=DEVICE)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        close(model.score_map(x).flatten(1), model(x))


def test_torchvision_parity_on_device():
    theirs = torchvision.models.vgg11_bn().eval().to(DEVICE)
    ours = build("vgg11_bn").eval().to(DEVICE)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 96, 128, device=DEVICE)
    with torch.no_grad():
        close(ours(x), theirs(x))


def test_extract_on_device():
    model = tiny("vgg19").to(DEVICE)
    x = torch.randn(1, 3, 64, 64, device=DEVICE)
    with torch.no_grad():
        taps = model.extract(x, ["relu1_2", "relu5_4", "fc8"])
        close(taps["fc8"], model(x))
        assert taps["relu1_2"].device.type == DEVICE.type and (taps["relu1_2"] >= 0).all()


def test_bn_folding_and_dense_posteriors_on_device():
    model = tiny("vgg13_bn")
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2)
    model = model.to(DEVICE)
    fused = fuse_batch_norm(model)
    x = torch.randn(2, 3, 256, 288, device=DEVICE)
    close(posteriors(fused, x, "dense", 224), posteriors(model, x, "dense", 224))


def test_bf16_autocast_stays_close_and_a_training_step_is_finite():
    model = tiny("vgg16_bn", num_classes=5).train().to(DEVICE, memory_format=torch.channels_last)
    x = torch.randn(8, 3, 64, 64, device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (8,), device=DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        full = model(x)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            half = model(x)
    close(half, full, tol=5e-2)
