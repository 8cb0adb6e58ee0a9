"""Safe under training: finite gradients where feature vectors are zero, float32 arithmetic under bf16 autocast,
inputs outside the declared range refused or warned, and every metric saying how it computes."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from helpers import tiny
from references import relative, shared_vgg, stub_torchvision

from vggnet.losses import DISTS, LPIPS, PerceptualLoss, StyleLoss


def dead_at(model, name, value=-1e4):
    """A copy of ``model`` whose conv ``name`` outputs ``value`` everywhere: zero vectors after its ReLU (or, for a
    tiny positive value, vectors whose sum of squares is 0 in float32, as fp16 makes of small activations)."""
    dead = copy.deepcopy(model)
    with torch.no_grad():
        dead.layer(name).weight.zero_()
        dead.layer(name).bias.fill_(value)
    return dead


def test_lpips_gradient_is_finite_where_a_feature_vector_is_zero_and_values_equal_the_package(monkeypatch):
    lpips = pytest.importorskip("lpips")
    stub_torchvision(monkeypatch)
    model = dead_at(shared_vgg(), "conv5_3", 1e-25)  # relu5_3's squares vanish: its norm is 0, its vectors not
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    theirs = lpips.LPIPS(net="vgg", verbose=False)
    theirs.net.slice5[-2].weight.data.zero_()  # conv5_3 in lpips's slices
    theirs.net.slice5[-2].bias.data.fill_(1e-25)
    xi = x.clone().requires_grad_(True)
    theirs(xi, y).sum().backward()
    assert torch.isnan(xi.grad).any()  # the package's square root at zero
    ours = LPIPS(model)
    xo = x.clone().requires_grad_(True)
    value = ours(xo, y)
    value.sum().backward()
    assert torch.isfinite(xo.grad).all() and xo.grad.abs().sum() > 0
    assert relative(value, theirs(x, y).detach()) < 1e-5


@pytest.mark.parametrize(
    "make",
    [
        lambda m: LPIPS(m, input_range=(0, 1)),
        lambda m: DISTS(m),
        lambda m: PerceptualLoss(m, layers=["relu1_2", "relu5_3"], normalize_features=True),
        lambda m: PerceptualLoss(m, criterion="fro", style_weight=1.0),
        lambda m: StyleLoss(m, normalize_features=True, criterion="fro"),
    ],
    ids=["lpips", "dists", "normalized", "fro", "style"],
)
def test_black_and_flat_images_give_finite_gradients(make):
    metric = make(dead_at(shared_vgg(), "conv5_1"))
    for x, y in ((torch.zeros(2, 3, 32, 32), torch.rand(2, 3, 32, 32)), (torch.full((2, 3, 32, 32), 0.5),) * 2):
        xi = x.clone().requires_grad_(True)
        value = metric(xi, y.clone())
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(xi.grad).all()


@pytest.mark.parametrize(
    ("make", "tolerance"),
    [
        (lambda m: StyleLoss(m), 0.01),
        (lambda m: PerceptualLoss(m, layers=["relu2_2", "relu4_3"]), 0.01),
        (lambda m: LPIPS(m, input_range=(0, 1), lin=None, reduction="mean"), 0.01),
        (lambda m: DISTS(m, reduction="mean"), 0.01),
    ],
    ids=["style", "perceptual", "lpips", "dists"],
)
def test_bf16_autocast_keeps_the_statistics_in_float32(make, tolerance):
    metric = make(shared_vgg())
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    exact = metric(x, y)
    seen = []
    hook = metric.taps.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = metric(x, y)
    hook.remove()
    assert seen == [torch.bfloat16] * 2 and fast.dtype == torch.float32  # the trunk ran in bf16, the result f32
    assert relative(fast, exact) < tolerance, (float(fast), float(exact))


def test_a_gram_taken_in_bf16_is_what_the_float32_one_avoids():
    a = torch.rand(2, 64, 32, 32)
    from vggnet.losses import gram

    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = gram(a)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, gram(a), rtol=1e-6, atol=0)


def test_0_255_images_are_refused_in_one_sentence_and_0_1_for_minus_1_1_warned_once():
    model = tiny("vgg16")
    signed = PerceptualLoss(model, input_range=(-1, 1))
    unit = PerceptualLoss(model)
    pixels = torch.randint(0, 256, (2, 3, 32, 32)).float()
    for metric in (signed, unit):
        with pytest.raises(ValueError) as err:
            metric(pixels, pixels)
        message = str(err.value)
        assert "\n" not in message and "range over [0, 255]" in message and "input_range=" in message
    with pytest.raises(ValueError, match="divide by 255"):
        unit(torch.rand(1, 3, 32, 32), pixels[:1])  # the target too
    with pytest.raises(ValueError, match="NaN"):
        unit(torch.full((1, 3, 32, 32), float("nan")), torch.rand(1, 3, 32, 32))
    x = torch.rand(2, 3, 32, 32)
    with pytest.warns(UserWarning, match=r"no negative value: if these are \[0, 1\] images, give input_range=\(0, 1\)"):
        signed(x, x.flip(0))
    with pytest.warns(
        UserWarning, match=r"goes down to -(1|0.9\d*): if these are \[-1, 1\] images, give input_range=\(-1, 1\)"
    ):
        PerceptualLoss(model)(x * 2 - 1, x.flip(0) * 2 - 1)  # [-1, 1] images given to a [0, 1] metric
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signed(x, x.flip(0))  # once per metric
        signed(x * 2 - 1, x.flip(0) * 2 - 1)
        unit(x.clamp(0, 1) * 1.2 - 0.1, x)  # a generator's overshoot is no mismatch
        PerceptualLoss(model, check_range=False)(pixels, pixels)


def test_describe_says_how_each_metric_computes():
    model = shared_vgg()
    lp = LPIPS(model)
    d = lp.describe()
    assert d["metric"] == "LPIPS" and d["version"].startswith("LPIPS v0.1") and d["input_range"] == [-1.0, 1.0]
    assert re.fullmatch(r"[0-9a-f]{12}", d["weights_sha256"]) and re.fullmatch(r"[0-9a-f]{12}", d["calibration_sha256"])
    assert list(d["taps"]) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    assert "mean [0.485, 0.456, 0.406]" in d["normalization"] and "repeated" in d["channels"]
    text = str(d)
    assert text.splitlines()[0] == "metric: LPIPS" and "weights_sha256: " + d["weights_sha256"] in text
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.features[0].weight.mul_(1.001)
    assert LPIPS(other).describe()["weights_sha256"] != d["weights_sha256"]
    assert LPIPS(model, version="0.0").describe()["calibration_sha256"] != d["calibration_sha256"]
    vgg19 = shared_vgg("vgg19")
    for metric in (DISTS(model), PerceptualLoss.srgan(model=vgg19), StyleLoss.gatys(model=vgg19)):
        described = metric.describe()
        assert {"metric", "version", "weights", "weights_sha256", "taps", "input_range", "normalization",
                "channels", "pooling", "precision"} <= set(described)  # fmt: skip
    assert "average pooling" in StyleLoss.gatys(model=vgg19).describe()["pooling"]
    assert "L2 pooling" in DISTS(model).describe()["pooling"]
