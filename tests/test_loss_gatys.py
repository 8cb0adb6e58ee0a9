"""Gatys et al.'s losses and network: their style and content terms by the paper's formulas, average pooling in
place of max, and the normalised network (each filter's mean activation 1, the class scores unchanged)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny

from vggnet.base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization
from vggnet.losses import GATYS_STYLE, PerceptualLoss, StyleLoss, mean_activations, normalize_filters

IMAGENET = Normalization(IMAGENET_MEAN, IMAGENET_STD)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(5)
    return tiny("vgg19", fc_width=16)


def averaged(model):
    """The model with every max pooling replaced by average pooling, as Gatys et al. ran it."""
    out = copy.deepcopy(model)
    for i, m in enumerate(out.features):
        if isinstance(m, torch.nn.MaxPool2d):
            out.features[i] = torch.nn.AvgPool2d(2, 2)
    return out


def test_the_papers_style_and_content_losses(model):
    x, y = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        fx, fy = (averaged(model).extract(IMAGENET(t), [*GATYS_STYLE, "relu4_2"]) for t in (x, y))
    style = 0
    for name, weight in GATYS_STYLE.items():
        f, p = fx[name].flatten(2)[0], fy[name].flatten(2)[0]
        n, m = f.shape
        style = style + weight * ((f @ f.T - p @ p.T) ** 2).sum() / (4 * n**2 * m**2)  # Eq. 4-5
    content = 0.5 * ((fx["relu4_2"] - fy["relu4_2"]) ** 2).sum()  # Eq. 1
    torch.testing.assert_close(StyleLoss.gatys(model=model)(x, y), style, rtol=1e-5, atol=0)
    torch.testing.assert_close(PerceptualLoss.gatys(model=model)(x, y), content, rtol=1e-5, atol=0)
    described = StyleLoss.gatys(model=model).describe()
    assert "4 N^2 M^2" in described["gram"] and described["metric"] == "Gatys style loss"


def test_average_pooling_replaces_max_in_the_taps(model):
    x = torch.rand(2, 3, 40, 40)
    loss = PerceptualLoss(model, layers=["relu3_1"], pooling="avg")
    with torch.no_grad():
        expected = averaged(model).extract(IMAGENET(x), "relu3_1")["relu3_1"]
        got = loss.features(x)["relu3_1"]
    torch.testing.assert_close(got, expected)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in loss.taps.modules())


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_the_normalised_network(model, pooling):
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 32)
    before = copy.deepcopy(model.state_dict())
    normalised = normalize_filters(model, [images[:3], (images[3:], torch.zeros(3))], IMAGENET, pooling=pooling)
    means = mean_activations(normalised, images, IMAGENET, pooling)
    for mean in means.values():
        active = mean > 0
        torch.testing.assert_close(mean[active], torch.ones(int(active.sum()), dtype=mean.dtype), rtol=1e-4, atol=0)
    with torch.no_grad():  # the same function: ReLU and pooling commute with the positive scales
        torch.testing.assert_close(normalised(IMAGENET(images)), model.eval()(IMAGENET(images)), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the given model untouched
    with pytest.raises(ValueError, match="no images given"):
        normalize_filters(model, [], IMAGENET)
    with pytest.raises(ValueError, match="LRN"):
        normalize_filters(tiny("vgg11_lrn"), images, IMAGENET)


def test_a_style_target_of_another_size_serves_any_picture_and_patches(model):
    style_image = torch.rand(1, 3, 64, 48)
    loss = StyleLoss.gatys(model=model)
    loss.set_target(style_image)
    x = torch.rand(2, 3, 40, 56)
    expected = StyleLoss.gatys(model=model, reduction="none")
    with torch.no_grad():
        grams = [expected.features(t) for t in (x, style_image)]
    by_hand = sum(
        w * ((expected.represent(n, grams[0][n], None) - expected.represent(n, grams[1][n], None)) ** 2).mean((1, 2))
        for n, w in GATYS_STYLE.items()
    ).mean()
    torch.testing.assert_close(loss(x), by_hand, rtol=1e-5, atol=0)
    patched = StyleLoss.gatys(model=model, patch_size=32, patches=2)
    patched.set_target(style_image)  # the whole style image's Grams, against the picture's windows
    assert torch.isfinite(patched(x))
    content = PerceptualLoss(model)
    content.set_target(style_image)
    with pytest.raises(ValueError, match="set a target of the images' size and channels"):
        content(x)
