"""Grad-CAM: the published definition, at any size, with and without BN, and it finds what a model looks at."""

import pytest
import torch
import torch.nn.functional as F
from helpers import make_folder, saved_tiny, tiny

import vggnet
from vggnet.cli import main
from vggnet.inference.gradcam import grad_cam


def hooked_grad_cam(model, x, target, layer):
    """Grad-CAM the usual way: hooks on the layer for its output and gradient, backward from the class score."""
    store = {}

    def keep(module, inputs, output):
        store["act"] = output
        output.register_hook(lambda g: store.__setitem__("grad", g))
        return output.clone()  # what follows gets a copy: an in-place ReLU must not overwrite the kept map

    module = model.layer(layer)
    handle = module.register_forward_hook(keep)
    try:
        model.eval()
        scores = model(x)
        scores[torch.arange(len(x)), target].sum().backward()
    finally:
        handle.remove()
    weights = store["grad"].mean((2, 3), keepdim=True)
    cam = F.relu((weights * store["act"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.flatten(1).max(1).values.view(-1, 1, 1)


@pytest.mark.parametrize(
    ("arch", "size", "layer"),
    [("vgg16", (64, 96), "relu5_3"), ("vgg16", (64, 64), "conv5_3"), ("vgg16_bn", (80, 72), "bn4_2")],
)
def test_grad_cam_equals_the_hook_based_computation(arch, size, layer):
    model = tiny(arch, num_classes=5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 3, *size)
    target = torch.tensor([0, 3, 4])
    model.train()
    ours = grad_cam(model, x, target, layer)
    assert model.training  # left as it was
    theirs = hooked_grad_cam(model, x, target, layer)
    assert ours.shape == (3, *size) and ours.min() >= 0 and ours.max() <= 1
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-4, atol=1e-5)


def test_top_class_default_layer_and_bad_input():
    model = tiny("vgg16", num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        top = model(x).argmax(1)
    torch.testing.assert_close(grad_cam(model, x), grad_cam(model, x, top, "relu5_3"))
    assert grad_cam(tiny("vgg11"), x).shape == (2, 64, 64)  # no relu5_3 in VGG-11: its last ReLU, relu5_2
    with pytest.raises(ValueError, match="one per image"):
        grad_cam(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 4\)"):
        grad_cam(model, x, 7)
    with pytest.raises(ValueError, match="classifier head"):
        grad_cam(model, x, None, "fc7")
    with torch.inference_mode(), pytest.raises(ValueError, match="outside torch.inference_mode"):
        grad_cam(model, x)


def planted(n, seed, size=32, side=8):
    """Noise images; class 1 holds a red square somewhere, class 0 none."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = torch.arange(n) % 2
    tops = torch.randint(0, size - side, (n,), generator=g)
    lefts = torch.randint(0, size - side, (n,), generator=g)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for i in torch.nonzero(y).flatten().tolist():
        mask[i, tops[i] : tops[i] + side, lefts[i] : lefts[i] + side] = True
    x[:, 0][mask] = 1.0
    x[:, 1][mask] = x[:, 2][mask] = 0.0
    return x, y, mask


@pytest.mark.slow
def test_grad_cam_finds_a_planted_object():
    torch.manual_seed(0)
    x, y, _ = planted(512, seed=0)
    model = vggnet.build("vgg11_bn", width=1 / 16, pool_size=1, fc_width=16, num_classes=2, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(100):
        i = torch.randint(0, len(x), (32,))
        loss = F.cross_entropy(model(x[i]), y[i])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    xt, yt, mask = planted(64, seed=1)
    with torch.no_grad():
        assert (model.eval()(xt).argmax(1) == yt).float().mean() > 0.9
    cam = grad_cam(model, xt[yt == 1], 1, "relu3_2")  # an 8 x 8 map over a 32 x 32 image
    mask = mask[yt == 1]
    inside = (cam * mask).sum((1, 2)) / mask.sum((1, 2))
    outside = (cam * ~mask).sum((1, 2)) / (~mask).sum((1, 2))
    peak = cam.flatten(1).argmax(1)
    on_object = mask.flatten(1)[torch.arange(len(peak)), peak]
    assert on_object.float().mean() > 0.9 and (inside > 2 * outside).float().mean() > 0.9


def test_predict_draws_grad_cam(tmp_path, capsys):
    _, path = saved_tiny(tmp_path, ("cat", "dog", "owl"))
    make_folder(tmp_path / "imgs", bad=False)
    image = str(tmp_path / "imgs" / "dog" / "0.png")
    out = tmp_path / "cam.png"
    assert (
        main(["predict", "--weights", str(path), image, "--cam", str(out), "--heatmap", str(tmp_path / "h.png")]) == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out}" in capsys.readouterr().out
