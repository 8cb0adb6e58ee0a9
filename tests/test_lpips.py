"""vggnet's LPIPS against the lpips package itself, on the same random trunk (lpips's pnet_rand=True: no
download) and the calibrated layers lpips installs."""

from __future__ import annotations

import copy

import pytest
import torch

import vggnet
from vggnet.losses import LPIPS, lpips_layers

lpips = pytest.importorskip("lpips")


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    trunk = {f"features.{k.split('.', 1)[1]}": v for k, v in reference.net.state_dict().items()}  # sliceN.i -> i
    model = vggnet.vgg16(pool_size=1, fc_width=8)  # LPIPS reads the trunk: a small head will do
    model.load_state_dict({**model.state_dict(), **trunk})
    return reference, model


def test_lpips_equals_the_lpips_package_given_the_same_trunk(pair):
    reference, model = pair
    ours = LPIPS(model)
    x, y = torch.rand(3, 3, 32, 40) * 2 - 1, torch.rand(3, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        expected = reference(x, y)
    got = ours(x, y)
    assert got.shape == expected.shape == (3, 1, 1, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with torch.no_grad():  # in double precision the two are the same function, to rounding
        double = copy.deepcopy(reference).double()
        torch.testing.assert_close(
            LPIPS(copy.deepcopy(model).double())(x.double(), y.double()),
            double(x.double(), y.double()),
            atol=1e-9,
            rtol=0,
        )
    unit = LPIPS(model, input_range=(0.0, 1.0))  # lpips's normalize=True
    with torch.no_grad():
        torch.testing.assert_close(unit((x + 1) / 2, (y + 1) / 2), reference(x, y), rtol=0, atol=1e-6)


def test_a_fixed_reference_and_gradients_to_the_image_alone(pair):
    reference, model = pair  # in double precision: float32's rounding can flip a ReLU's gradient
    reference, ours = copy.deepcopy(reference).double(), LPIPS(copy.deepcopy(model).double())
    x, y = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1, torch.rand(1, 3, 32, 32, dtype=torch.float64) * 2 - 1
    ours.set_target(y)
    xi = x.clone().requires_grad_(True)
    ours(xi).sum().backward()
    theirs = x.clone().requires_grad_(True)
    reference(theirs, y.expand_as(x)).sum().backward()
    torch.testing.assert_close(xi.grad, theirs.grad, rtol=1e-6, atol=1e-6 * theirs.grad.abs().max().item())
    assert not any(p.requires_grad for p in ours.parameters())  # nothing in it can be trained


def test_the_calibrated_layers_from_a_path_a_url_and_bad_files(tmp_path):
    installed = lpips_layers()
    assert [w.numel() for w in installed.values()] == [64, 128, 256, 512, 512]
    state = {f"lin{i}.model.1.weight": w.view(1, -1, 1, 1) for i, w in enumerate(installed.values())}
    torch.save(state, tmp_path / "vgg.pth")
    from_url = lpips_layers(f"file://{tmp_path / 'vgg.pth'}")
    assert all(torch.equal(a, b) for a, b in zip(installed.values(), from_url.values()))
    torch.save({"conv.weight": torch.ones(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="holds no LPIPS layers for VGG"):
        lpips_layers(tmp_path / "other.pth")
    narrow = vggnet.build("vgg16", width=0.5, pool_size=1, fc_width=8)
    with pytest.raises(ValueError, match="LPIPS's layer for relu1_2 has 64 weights; the trunk has 32 channels"):
        LPIPS(narrow)
