"""Every metric against its reference package on the same trunk weights (references.py stubs torchvision's VGG in
the packages): lpips, DISTS_pytorch, piq; BasicSR's perceptual loss, whose release does not import with today's
torchvision (``torchvision.transforms.functional_tensor`` is gone), transcribed here from its published
``basicsr/losses/basic_loss.py`` and ``basicsr/archs/vgg_arch.py`` (1.4.2); SRGAN's loss from its paper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from references import relative, shared_vgg, stub_torchvision

from vggnet.losses import DISTS, LPIPS, PerceptualLoss, StyleLoss, lpips_layers, total_variation

RTOL = 1e-5


@pytest.fixture
def stubbed(monkeypatch):
    stub_torchvision(monkeypatch)


def pairs(n=2, size=(32, 40), signed=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 3, *size, generator=g), torch.rand(n, 3, *size, generator=g)
    return (2 * x - 1, 2 * y - 1) if signed else (x, y)


@pytest.mark.parametrize("version", ["0.1", "0.0"])
def test_lpips_equals_the_lpips_package_both_versions_spatial_and_per_layer(stubbed, version):
    lpips = pytest.importorskip("lpips")
    x, y = pairs(2, signed=True)
    with torch.no_grad():
        theirs = lpips.LPIPS(net="vgg", version=version, verbose=False)
        value, layers = theirs(x, y, retPerLayer=True)
        spatial = lpips.LPIPS(net="vgg", version=version, spatial=True, verbose=False)(x, y)
        unit = theirs((x + 1) / 2, (y + 1) / 2, normalize=True)
    ours = LPIPS(shared_vgg(), version=version)
    got, got_layers = ours(x, y, per_layer=True)
    assert got.shape == value.shape == (2, 1, 1, 1) and relative(got, value) < RTOL
    for mine, reference in zip(got_layers.values(), layers):
        assert relative(mine, reference) < RTOL
    maps = LPIPS(shared_vgg(), version=version, spatial=True)(x, y)
    assert maps.shape == spatial.shape == (2, 1, 32, 40) and relative(maps, spatial) < RTOL
    assert relative(LPIPS(shared_vgg(), version=version, input_range=(0, 1))((x + 1) / 2, (y + 1) / 2), unit) < RTOL
    assert ours.describe()["version"].startswith(f"LPIPS v{version}")


def test_dists_equals_dists_pytorch_with_the_authors_alpha_and_beta(stubbed):
    dists_pt = pytest.importorskip("DISTS_pytorch")
    x, y = pairs(2, size=(32, 40))
    reference = dists_pt.DISTS()
    with torch.no_grad():
        expected, averaged = reference(x, y), reference(x, y, batch_average=True)
    ours = DISTS(shared_vgg())
    got = ours(x, y)
    assert got.shape == expected.shape == (2,) and relative(got, expected) < RTOL
    assert relative(DISTS(shared_vgg(), reduction="mean")(x, y), averaged) < RTOL
    torch.testing.assert_close(ours(x, x.clone()), torch.zeros(2), atol=1e-5, rtol=0)  # an image against itself
    # the alpha and beta are the package's own file, read without importing it
    state = torch.load(ours.source_of_weights, weights_only=True)
    assert torch.equal(ours.alpha_image.flatten() * (state["alpha"].sum() + state["beta"].sum()),
                       state["alpha"].flatten()[:3])  # fmt: skip


@pytest.mark.parametrize(
    ("piq_args", "ours"),
    [
        ({}, {"layers": ["relu3_3"], "channel_reduction": "sum"}),
        ({"layers": ("relu1_2", "relu3_1"), "weights": [1.0, 0.5], "distance": "mae", "reduction": "none"},
         {"layers": {"relu1_2": 1.0, "relu3_1": 0.5}, "criterion": "l1", "channel_reduction": "sum",
          "reduction": "none"}),
        ({"layers": ("relu2_2",), "replace_pooling": True, "normalize_features": True, "reduction": "sum"},
         {"layers": ["relu2_2"], "pooling": "avg", "normalize_features": True, "channel_reduction": "sum",
          "reduction": "sum"}),
    ],
)  # fmt: skip
def test_piq_content_loss(monkeypatch, piq_args, ours):
    """piq's taps are relu names here: at a conv name piq keeps a tensor the in-place ReLU after it overwrites, so
    its "conv3_1" is relu3_1 (vggnet's conv taps are the convolution's output)."""
    piq = pytest.importorskip("piq")
    stub_torchvision(monkeypatch)  # after piq's import: its own names for vgg16/vgg19 are replaced too
    x, y = pairs()
    with torch.no_grad():
        expected = piq.ContentLoss(**piq_args)(x, y)
    assert relative(PerceptualLoss(shared_vgg(), **ours)(x, y), expected) < RTOL


def test_piq_style_loss_lpips_and_dists(monkeypatch):
    piq = pytest.importorskip("piq")
    stub_torchvision(monkeypatch)  # after piq's import: its own names for vgg16/vgg19 are replaced too
    x, y = pairs(2, size=(32, 32))
    layers = ("relu1_2", "relu2_2", "relu3_3")
    with torch.no_grad():
        expected = piq.StyleLoss(feature_extractor="vgg19", layers=layers, weights=[1.0, 0.5, 0.25])(x, y)
    ours = StyleLoss(shared_vgg("vgg19"), layers=dict(zip(layers, [1.0, 0.5, 0.25])), gram="none")
    assert relative(ours(x, y), expected) < RTOL
    # piq's LPIPS and DISTS download their weights: given lpips's and DISTS_pytorch's own here
    lin = [w.view(1, -1, 1, 1) for w in lpips_layers().values()]
    dists = DISTS(shared_vgg())
    alpha_beta = torch.load(dists.source_of_weights, weights_only=True)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **k: lin if "lpips" in url else alpha_beta)
    with torch.no_grad():
        lp, ds = piq.LPIPS(reduction="none")(x, y), piq.DISTS(reduction="none")(x, y)
    assert relative(LPIPS(shared_vgg(), input_range=(0, 1))(x, y).flatten(), lp) < RTOL
    assert relative(dists(x, y), ds) < RTOL


@pytest.mark.parametrize("norm", ["l1", "l2", "l2_squared"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_total_variation_equals_piq_and_stays_finite_on_flat_images(norm, reduction):
    piq = pytest.importorskip("piq")
    x = torch.rand(3, 2, 9, 7)
    torch.testing.assert_close(total_variation(x, norm, reduction), piq.total_variation(x, reduction, norm))
    flat = torch.full((2, 3, 8, 8), 0.5, requires_grad=True)
    total_variation(flat, norm, reduction).sum().backward()
    assert torch.isfinite(flat.grad).all()  # piq's l2 gives NaN here: the root of a zero sum


# -- BasicSR, transcribed -----------------------------------------------------------------------------------------
def basicsr_features(model, x, names):
    """BasicSR's VGGFeatureExtractor(use_input_norm=True, range_norm=False): ImageNet's mean and std on [0, 1]
    images, torchvision's layers in order (MaxPool2d(2, 2) for the pools), a clone at each name asked."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h, out = (x - mean) / std, {}
    for name, layer in zip(model.layer_names, model.features):
        h = F.max_pool2d(h, 2, 2) if name.startswith("pool") else (F.relu(h) if name.startswith("relu") else layer(h))
        if name in names:
            out[name] = h.clone()
    return out


def basicsr_perceptual(model, x, gt, layer_weights, criterion, perceptual_weight=1.0, style_weight=0.0):
    """BasicSR 1.4.2's PerceptualLoss.forward: (percep_loss, style_loss); 'l2' is its intended MSELoss (the release
    names torch.nn.L2loss, which does not exist)."""
    fx, fg = basicsr_features(model, x, layer_weights), basicsr_features(model, gt.detach(), layer_weights)
    crit = {"l1": torch.nn.L1Loss(), "l2": torch.nn.MSELoss()}.get(criterion)

    def gram(t):
        n, c, h, w = t.size()
        f = t.view(n, c, w * h)
        return f.bmm(f.transpose(1, 2)) / (c * h * w)

    percep = style = 0
    for k in fx:
        if criterion == "fro":
            percep += torch.norm(fx[k] - fg[k], p="fro") * layer_weights[k]
            style += torch.norm(gram(fx[k]) - gram(fg[k]), p="fro") * layer_weights[k]
        else:
            percep += crit(fx[k], fg[k]) * layer_weights[k]
            style += crit(gram(fx[k]), gram(fg[k])) * layer_weights[k]
    return percep * perceptual_weight, style * style_weight


@pytest.mark.parametrize("criterion", ["l1", "l2", "fro"])
def test_esrgan_and_real_esrgan_equal_basicsr_transcribed(criterion):
    model = shared_vgg("vgg19")
    x, y = pairs(2, size=(32, 32))
    esrgan = PerceptualLoss.esrgan(model=model, criterion=criterion)
    percep, _ = basicsr_perceptual(model, x, y, {"conv5_4": 1.0}, criterion)
    assert relative(esrgan(x, y), percep) < RTOL
    real = PerceptualLoss.real_esrgan(model=model, criterion=criterion, style_weight=2.0, perceptual_weight=0.5)
    weights = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
    percep, style = basicsr_perceptual(model, x, y, weights, criterion, perceptual_weight=0.5, style_weight=2.0)
    assert relative(real(x, y), percep + style) < RTOL
    assert esrgan.describe()["tap_points"]["conv5_4"].startswith("before activation")


@pytest.mark.parametrize("variant", ["VGG22", "VGG54"])
def test_srgan_rescales_the_features_by_1_over_12_75(variant):
    model = shared_vgg("vgg19")
    x, y = pairs(2, size=(32, 32))
    name = {"VGG22": "relu2_2", "VGG54": "relu5_4"}[variant]
    fx, fy = (basicsr_features(model, t, [name])[name] for t in (x, y))
    expected = F.mse_loss(fx / 12.75, fy / 12.75)
    assert relative(PerceptualLoss.srgan(variant, model=model)(x, y), expected) < RTOL
    with pytest.raises(ValueError, match="unknown SRGAN loss 'VGG33'"):
        PerceptualLoss.srgan("VGG33", model=model)


@pytest.mark.slow  # importing monai takes seconds
def test_volumes_equal_monais_2_5_d_perceptual_loss(stubbed):
    """MONAI's PerceptualLoss(spatial_dims=3, is_fake_3d=True) on lpips's VGG: slices across each axis, a random
    share drawn (torch's global generator there, a generator seeded alike here), the axes' means summed."""
    losses = pytest.importorskip("monai.losses")
    g = torch.Generator().manual_seed(4)
    x, y = (torch.rand(1, 1, 32, 33, 34, generator=g) * 2 - 1 for _ in range(2))
    theirs = losses.PerceptualLoss(spatial_dims=3, network_type="vgg", is_fake_3d=True, fake_3d_ratio=0.25)
    torch.manual_seed(5)
    with torch.no_grad():
        expected = theirs(x, y)
    ours = LPIPS(shared_vgg(), fake_3d_ratio=0.25, seed=5, reduction="mean")
    assert relative(ours(x, y), expected) < RTOL
