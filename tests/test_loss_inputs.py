"""The inputs people have: grey and multichannel images, 3-D volumes as 2.5-D (MONAI's convention), masks, patches
of large images; and the memory options (checkpointing, a fixed target) that must not change a value."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from references import shared_vgg

from vggnet.base.normalization import Normalization
from vggnet.losses import DISTS, LPIPS, PerceptualLoss, StyleLoss


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return tiny("vgg16")


def test_grey_images_are_repeated_and_other_channel_counts_scored_channel_by_channel(model):
    loss = PerceptualLoss(model, reduction="none")
    x, y = torch.rand(2, 1, 32, 40), torch.rand(2, 1, 32, 40)
    torch.testing.assert_close(loss(x, y), loss(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)))
    x4, y4 = torch.rand(2, 4, 32, 40), torch.rand(2, 4, 32, 40)
    by_channel = torch.stack([loss(x4[:, c : c + 1], y4[:, c : c + 1]) for c in range(4)], 1).mean(1)
    torch.testing.assert_close(loss(x4, y4), by_channel)
    torch.testing.assert_close(PerceptualLoss(model)(x4, y4), by_channel.mean())
    assert "repeated" in loss.describe()["channels"]


def test_an_averaged_first_layer_on_request(model):
    flat = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))  # equal channels: averaging then changes nothing
    repeat = PerceptualLoss(model, normalization=flat)
    average = PerceptualLoss(model, normalization=flat, channels="average")
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(average(x, y), repeat(x, y), rtol=1e-5, atol=1e-7)
    x2, y2 = torch.rand(2, 2, 32, 32), torch.rand(2, 2, 32, 32)  # two identical channels are one grey image
    same = average(x2[:, :1].expand(-1, 2, -1, -1), y2[:, :1].expand(-1, 2, -1, -1))
    torch.testing.assert_close(same, repeat(x2[:, :1], y2[:, :1]), rtol=1e-5, atol=1e-7)
    assert "averaged first layer" in average.describe()["channels"]
    with pytest.raises(ValueError, match="unknown channels 'mean'"):
        PerceptualLoss(model, channels="mean")


def monai_2_5d(metric, x, y, ratio, generator):
    """MONAI's PerceptualLoss(spatial_dims=3, is_fake_3d=True)._calculate_axis_loss, summed over the axes: slices
    batched volume by volume, a random int(N * S * ratio) of them kept, the metric's mean over those."""
    total = 0
    for axis in (2, 3, 4):
        others = [a for a in (2, 3, 4) if a != axis]

        def slices(v, axis=axis, others=others):
            return v.permute(0, axis, 1, *others).reshape(-1, v.shape[1], *(v.shape[a] for a in others))

        xs, ys = slices(x), slices(y)
        if ratio < 1:
            keep = torch.randperm(len(xs), generator=generator)[: int(len(xs) * ratio)]
            xs, ys = xs[keep], ys[keep]
        total = total + metric(xs, ys).mean()
    return total


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_volumes_are_scored_as_2_5_d_as_monai_does(model, ratio):
    x, y = torch.rand(2, 1, 34, 32, 36), torch.rand(2, 1, 34, 32, 36)
    ours = PerceptualLoss(model, fake_3d_ratio=ratio, seed=7, reduction="mean")
    plain = PerceptualLoss(model, reduction="none")
    expected = monai_2_5d(plain, x, y, ratio, torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours(x, y), expected, rtol=1e-5, atol=1e-8)
    if ratio == 1:  # per volume: each volume's own slices
        per_volume = PerceptualLoss(model, fake_3d_ratio=1.0, reduction="none")(x, y)
        alone = [monai_2_5d(plain, x[i : i + 1], y[i : i + 1], 1.0, None) for i in range(2)]
        torch.testing.assert_close(per_volume, torch.stack(alone), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="at least 32x32"):
        ours(torch.rand(1, 1, 16, 32, 32), torch.rand(1, 1, 16, 32, 32))


def test_masks_weight_the_positions_and_give_per_image_values(model):
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss = PerceptualLoss(model, layers=["relu1_2"], reduction="none")
    ones = torch.ones(2, 1, 32, 32)
    torch.testing.assert_close(loss(x, y, mask=ones), loss(x, y))
    mask = torch.zeros(2, 32, 32)
    mask[:, :, :16] = 1  # the left half
    with torch.no_grad():
        norm = loss.normalization
        fx, fy = (model.extract(norm(t), "relu1_2")["relu1_2"] for t in (x, y))
    expected = ((fx - fy) ** 2)[..., :16].mean((1, 2, 3))
    torch.testing.assert_close(loss(x, y, mask=mask), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(PerceptualLoss(model, layers=["relu1_2"])(x, y, mask=mask), expected.mean())
    # a mask at a deeper tap is the share of each position it covers; style Grams weigh positions alike
    style = StyleLoss(model, layers=["relu2_2"], reduction="none")
    assert torch.isfinite(style(x, y, mask=mask)).all()
    torch.testing.assert_close(style(x, y, mask=ones), style(x, y))
    lp = LPIPS(shared_vgg(), input_range=(0, 1))
    maps = LPIPS(shared_vgg(), input_range=(0, 1), spatial=True)(x, y, mask=mask[:, None])
    assert maps.shape == (2, 1, 32, 32) and maps[..., 16:].abs().max() == 0
    with pytest.raises(ValueError, match="a mask for images"):
        loss(x, y, mask=torch.ones(3, 1, 32, 32))
    with pytest.raises(ValueError, match=r"mask values are weights in \[0, 1\]"):
        loss(x, y, mask=ones * 2)
    assert lp(x, y, mask=mask).shape == (2, 1, 1, 1)


def test_patches_of_large_images_are_seeded_and_cover_the_image(model):
    x, y = torch.rand(2, 3, 96, 80), torch.rand(2, 3, 96, 80)
    first = PerceptualLoss(model, patch_size=32, patches=3, seed=1)
    again = PerceptualLoss(model, patch_size=32, patches=3, seed=1)
    torch.testing.assert_close(first(x, y), again(x, y))  # the same seed, the same windows
    assert first(x, y) != PerceptualLoss(model, patch_size=32, patches=3, seed=2)(x, y)
    whole = PerceptualLoss(model, patch_size=(96, 80))
    torch.testing.assert_close(whole(x, y), PerceptualLoss(model)(x, y))  # a window as large as the image
    # each image's value is the mean over its windows, drawn top then left from the seeded generator
    g = torch.Generator().manual_seed(1)
    tops, lefts = torch.randint(0, 96 - 32 + 1, (2, 3), generator=g), torch.randint(0, 80 - 32 + 1, (2, 3), generator=g)
    plain = PerceptualLoss(model, reduction="none")
    by_hand = [
        torch.stack([plain(x[i : i + 1, :, a : a + 32, b : b + 32], y[i : i + 1, :, a : a + 32, b : b + 32])[0]
                     for a, b in zip(tops[i].tolist(), lefts[i].tolist())]).mean()
        for i in range(2)
    ]  # fmt: skip
    windows = PerceptualLoss(model, patch_size=32, patches=3, seed=1, reduction="none")
    torch.testing.assert_close(windows(x, y), torch.stack(by_hand), rtol=1e-5, atol=1e-8)
    xi = x.clone().requires_grad_(True)
    first(xi, y).backward()
    reached = (xi.grad != 0).float().mean()  # the windows' pixels, and no others: 3 of 32 x 32 in 96 x 80 at most
    assert 0.1 < reached <= 3 * 32 * 32 / (96 * 80) and torch.isfinite(xi.grad).all()
    style = StyleLoss(model, patch_size=32, patches=2)
    style.set_target(y[:1])  # a fixed target with patches: kept, and its windows run without autograd
    assert torch.isfinite(style(x))


def test_checkpointing_and_a_fixed_target_change_no_value(model):
    x, y = torch.rand(2, 3, 40, 40), torch.rand(1, 3, 40, 40)
    for cls, kw in ((PerceptualLoss, {"layers": ["conv1_2", "relu2_2", "relu3_3"]}), (StyleLoss, {})):
        plain, saved = cls(model, **kw), cls(model, checkpoint=True, **kw)
        grads = []
        for loss in (plain, saved):
            xi = x.clone().requires_grad_(True)
            loss(xi, y.expand_as(x)).backward()
            grads.append(xi.grad)
        torch.testing.assert_close(grads[0], grads[1])
        saved.set_target(y)
        torch.testing.assert_close(saved(x), plain(x, y.expand_as(x)))


def test_per_layer_values_sum_to_the_metric(model):
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss = PerceptualLoss(model, layers={"relu1_2": 2.0, "relu2_2": 0.5}, reduction="none")
    total, layers = loss(x, y, per_layer=True)
    torch.testing.assert_close(total, 2.0 * layers["relu1_2"] + 0.5 * layers["relu2_2"])
    dists = DISTS(shared_vgg())
    total, layers = dists(x, y, per_layer=True)
    assert list(layers) == ["image", "relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    torch.testing.assert_close(total, 1 - sum(layers.values()))


def test_shapes_and_options_are_checked(model):
    loss = PerceptualLoss(model)
    with pytest.raises(ValueError, match=r"takes float images N x C x H x W \(or volumes"):
        loss(torch.rand(3, 32, 32), torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="x and y must have one shape"):
        loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))
    loss.set_target(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="the fixed target is"):
        loss(torch.rand(2, 3, 32, 40))
    bad_options = {"reduction": "avg", "patch_size": 0, "fake_3d_ratio": 0, "pooling": "min"}
    for key, value in bad_options.items():
        match = "unknown reduction|unknown pooling" if key in ("reduction", "pooling") else f"{key} must be"
        with pytest.raises(ValueError, match=match):
            PerceptualLoss(model, **{key: value})
    with pytest.raises(ValueError, match="spatial maps are of the mse or l1 criterion"):
        PerceptualLoss(model, criterion="fro", spatial=True)
