"""Perceptual and style losses: what they compute, what they train, how deep they run."""

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny

import vggnet
import vggnet.base.download
from vggnet.base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization
from vggnet.losses import PerceptualLoss, StyleLoss, gram


def small(arch="vgg16_bn"):
    model = tiny(arch)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model


IMAGENET = Normalization(IMAGENET_MEAN, IMAGENET_STD)


def direct(model, x):
    with torch.no_grad():
        return model.eval().extract(IMAGENET(x), model.layer_names)


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_values_equal_a_direct_computation_from_extract(arch):
    model = small(arch)
    x, y = torch.rand(2, 3, 48, 64), torch.rand(2, 3, 48, 64)
    fx, fy = direct(model, x), direct(model, y)
    perceptual = PerceptualLoss(model, layers={"relu2_2": 1.0, "conv3_1": 0.5})
    expected = F.mse_loss(fx["relu2_2"], fy["relu2_2"]) + 0.5 * F.mse_loss(fx["conv3_1"], fy["conv3_1"])
    torch.testing.assert_close(perceptual(x, y), expected, rtol=1e-4, atol=1e-6)
    l1 = PerceptualLoss(model, layers={"relu1_2": 2.0}, criterion="l1")
    torch.testing.assert_close(l1(x, y), 2 * (fx["relu1_2"] - fy["relu1_2"]).abs().mean(), rtol=1e-4, atol=1e-6)
    style = StyleLoss(model)
    expected = 0
    for name in ("relu1_2", "relu2_2", "relu3_3", "relu4_3"):
        a, b = fx[name], fy[name]
        c, h, w = a.shape[1:]
        ga = torch.einsum("nchw,ndhw->ncd", a, a) / (c * h * w)
        gb = torch.einsum("nchw,ndhw->ncd", b, b) / (c * h * w)
        expected = expected + ((ga - gb) ** 2).mean()
    torch.testing.assert_close(style(x, y), expected, rtol=1e-4, atol=1e-8)


def test_an_image_against_itself_is_zero_and_the_gradient_reaches_only_the_input():
    model = small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for loss in (PerceptualLoss(model), StyleLoss(model)):
        x = torch.rand(3, 3, 40, 40)
        assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-10)
        x.requires_grad_(True)
        y = torch.rand(3, 3, 40, 40, requires_grad=True)
        loss(x, y).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert y.grad is None  # the target branch ran without autograd
        assert list(loss.parameters()) == [] and loss.state_dict() == {}
        assert all(not b.requires_grad for b in loss.buffers())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the source model untouched
    assert all(p.grad is None for p in model.parameters())


def test_always_in_inference_mode_and_never_in_an_optimizer():
    model = small().train()
    loss = PerceptualLoss(model).train()
    assert not any(m.training for m in loss.taps.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loss.modules())  # folded away
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    first = loss(x, y)
    with pytest.raises(ValueError, match="empty parameter list|optimizer got an empty"):
        torch.optim.SGD(loss.parameters(), lr=0.1)
    torch.testing.assert_close(loss(x, y), first)  # no statistics moved


def test_the_trunk_stops_at_the_deepest_layer_asked():
    model = small("vgg16")
    loss = PerceptualLoss(model, layers={"relu2_2": 1.0})
    assert len(loss.taps.layers) == model.layer_index("relu2_2") + 1
    calls = []
    for module in loss.taps.layers:
        module.register_forward_hook(lambda m, i, o: calls.append(m))
    loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    convs = [m for m in loss.taps.layers if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and sum(isinstance(m, torch.nn.Conv2d) for m in calls) == 2 * 4  # x and y
    assert len(StyleLoss(model).taps.layers) == model.layer_index("relu4_3") + 1


def test_input_range_and_caffe_style_weights_are_handled_inside(tmp_path):
    model = small("vgg16")
    x, y = torch.rand(2, 3, 32, 40), torch.rand(2, 3, 32, 40)
    reference = PerceptualLoss(model)(x, y)
    signed = PerceptualLoss(model, input_range=(-1, 1))
    torch.testing.assert_close(signed(2 * x - 1, 2 * y - 1), reference)
    # a Caffe port: BGR input on 0-255 minus the mean pixel, std 1, as its metadata says; users still pass RGB 0-1
    caffe_mean = (103.939, 116.779, 123.68)
    meta = {"mean": str(list(caffe_mean)), "std": "[1, 1, 1]", "channel_order": "BGR", "pixel_range": "255"}
    path = vggnet.save_weights(model, tmp_path / "caffe.safetensors", metadata=meta)
    from_file = PerceptualLoss(arch="vgg16", weights=str(path))

    def caffe_input(images):
        return 255 * images.flip(1) - torch.tensor(caffe_mean).view(1, 3, 1, 1)

    with torch.no_grad():
        a, b = (model.extract(caffe_input(v), "relu2_2")["relu2_2"] for v in (x, y))
    torch.testing.assert_close(from_file(x, y), F.mse_loss(a, b), rtol=1e-4, atol=1e-6)


def test_a_fixed_target_any_size_and_batch():
    model = small()
    style = StyleLoss(model)
    target = torch.rand(1, 3, 48, 48)
    style.set_target(target)
    for shape in ((1, 3, 48, 48), (4, 3, 48, 48)):
        x = torch.rand(*shape)
        torch.testing.assert_close(style(x), style(x, target.expand(*shape)))
    style.set_target(None)
    with pytest.raises(ValueError, match="give a target y"):
        style(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 32x32"):
        style(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="classifier head"):
        PerceptualLoss(model, layers={"fc7": 1.0})
    with pytest.raises(ValueError, match="unknown layer 'relu9_9'"):
        PerceptualLoss(model, layers={"relu9_9": 1.0})
    assert gram(torch.ones(2, 3, 4, 5)).shape == (2, 3, 3)


def test_arguments_are_checked_before_any_download(hub_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("downloaded before checking the arguments")

    monkeypatch.setattr(vggnet.base.download, "fetch", no_network)
    with pytest.raises(ValueError, match="unknown layer 'relu9_9'; this model has: conv1_1"):
        PerceptualLoss(layers={"relu9_9": 1.0})
    with pytest.raises(ValueError, match="fc7 is in the classifier head"):
        StyleLoss(layers=["relu1_2", "fc7"])
    with pytest.raises(ValueError, match="the weight of layer relu2_2 must be a finite number"):
        PerceptualLoss(layers={"relu2_2": float("nan")})
    with pytest.raises(ValueError, match="layers must map Caffe names to weights, or list names"):
        PerceptualLoss(layers=[1, 2])


def test_a_list_of_layers_weighs_them_equally():
    model = small()
    listed = PerceptualLoss(model, layers=["relu1_2", "relu2_2"])
    weighted = PerceptualLoss(model, layers={"relu1_2": 1.0, "relu2_2": 1.0})
    assert listed.layer_weights == {"relu1_2": 1.0, "relu2_2": 1.0}
    x, y = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(listed(x, y), weighted(x, y))
    assert StyleLoss(model, layers="relu1_1").layer_weights == {"relu1_1": 1.0}
