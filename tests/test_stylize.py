"""Neural style transfer's Python API: the objective equal to PyTorch's neural-style tutorial configured its way
(its loss definitions transcribed below) and to Gatys et al.'s terms, the optimisation, the starts, grey networks,
pictures written atomically and the normalised network made from a folder."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import png, tiny
from torch import nn

from vggnet.losses import PerceptualLoss, StyleLoss, mean_activations
from vggnet.losses.stylize import (
    NeuralStyle,
    normalized_on_folder,
    picture_format,
    read_picture,
    save_picture,
    stylize,
)

# -- PyTorch's tutorial "Neural Transfer Using PyTorch", its loss definitions transcribed ----------------------------
# ContentLoss: F.mse_loss against the content image's activation; StyleLoss: F.mse_loss between Gram matrices, each
# F F^T divided by a * b * c * d (batch, channels, height, width); a Normalization module in front; the loss modules
# inserted after the layers named conv_1, conv_2 ... (the i-th convolution: its output, before the ReLU, as the
# tutorial replaces each ReLU by an out-of-place one); content at conv_4, style at conv_1 ... conv_5; the network
# cut after the last loss; style weight 1e6, content weight 1.


class TutorialContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


def tutorial_gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    features = x.view(a * b, c * d)
    return torch.mm(features, features.t()).div(a * b * c * d)


class TutorialStyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = tutorial_gram(target_feature).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(tutorial_gram(x), self.target)
        return x


class TutorialNormalization(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def tutorial_model(cnn: nn.Sequential, style_img: torch.Tensor, content_img: torch.Tensor):
    """The tutorial's get_style_model_and_losses with its default layers."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    content_layers, style_layers = ["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]
    model = nn.Sequential(TutorialNormalization(mean, std))
    content_losses, style_losses, i = [], [], 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name, layer = f"relu_{i}", nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            raise RuntimeError(f"unrecognized layer {type(layer).__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            loss = TutorialContentLoss(model(content_img).detach())
            model.add_module(f"content_loss_{i}", loss)
            content_losses.append(loss)
        if name in style_layers:
            loss = TutorialStyleLoss(model(style_img).detach())
            model.add_module(f"style_loss_{i}", loss)
            style_losses.append(loss)
    last = max(j for j, m in enumerate(model) if isinstance(m, (TutorialContentLoss, TutorialStyleLoss)))
    return model[: last + 1], style_losses, content_losses


def tutorial_loss(model, style_losses, content_losses, x, style_weight=1e6, content_weight=1.0):
    model(x)
    style_score = sum(sl.loss for sl in style_losses) * style_weight
    content_score = sum(cl.loss for cl in content_losses) * content_weight
    return style_score + content_score


# the tutorial's conv_1 ... conv_5 are VGG-19's conv1_1, conv1_2, conv2_1, conv2_2, conv3_1 by Caffe name
TUTORIAL_WAY = dict(
    content_layers={"conv2_2": 1.0},
    style_layers=dict.fromkeys(["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"], 1.0),
    content_weight=1.0,
    style_weight=1e6,
    pooling="max",
    losses="means",
)


@pytest.fixture(scope="module")
def vgg19():
    torch.manual_seed(3)
    return tiny("vgg19", fc_width=16)


def test_the_tutorials_losses_and_gradients_on_the_same_weights(vgg19):
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 40, 48)
    x = torch.rand(1, 3, 40, 48)
    theirs = tutorial_model(copy.deepcopy(vgg19.features), style, content)
    mine = NeuralStyle(vgg19, **TUTORIAL_WAY)
    mine.set_images(content, style)
    for _ in range(2):  # a second picture: nothing kept from the first call
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        expected, got = tutorial_loss(*theirs, a), mine(b)
        expected.backward()
        got.backward()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7 * a.grad.abs().max().item())
        x = torch.rand(1, 3, 40, 48)
    content_term = sum(cl.loss for cl in theirs[2])
    assert mine.terms["content"] == pytest.approx(float(content_term.detach()), rel=1e-5)


def test_stylize_the_tutorials_way_lowers_the_tutorials_own_loss(vgg19):
    """vggnet's loop (L-BFGS, the picture clamped to [0, 1] before each evaluation as the tutorial's closure does,
    started from the content image) judged by the tutorial's transcribed model: its loss falls, and the terms vggnet
    reports for the picture it returns are the tutorial's for that picture."""
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 40)
    theirs = tutorial_model(copy.deepcopy(vgg19.features), style, content)
    objective = NeuralStyle(vgg19, **TUTORIAL_WAY)
    picture = stylize(content, style, objective, optimizer="lbfgs", steps=20, init="content", clamp=True)
    with torch.no_grad():
        before, after = tutorial_loss(*theirs, content), tutorial_loss(*theirs, picture)
    assert after < 0.5 * before
    reported = objective.terms["content"] + 1e6 * objective.terms["style"]
    assert reported == pytest.approx(float(after), rel=1e-4)


def test_the_papers_terms_on_one_pass(vgg19):
    content, style, x = torch.rand(1, 3, 48, 40), torch.rand(1, 3, 56, 64), torch.rand(1, 3, 48, 40)
    objective = NeuralStyle(vgg19, style_weight=20.0, tv_weight=0.5)
    objective.set_images(content, style)
    gatys_style = StyleLoss.gatys(model=vgg19)
    gatys_style.set_target(style)  # a style image of another size
    tv = ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum() + ((x[..., 1:] - x[..., :-1]) ** 2).sum()
    expected = PerceptualLoss.gatys(model=vgg19)(x, content) + 20.0 * gatys_style(x) + 0.5 * tv
    torch.testing.assert_close(objective(x), expected, rtol=1e-5, atol=0)
    assert set(objective.terms) == {"content", "style", "tv"}
    described = objective.describe()
    assert described["beta"] == 20.0 and "4 N^2 M^2" in described["losses"]
    assert described["content"]["taps"] == {"relu4_2": 0.5} and len(described["style"]["taps"]) == 5
    assert "average pooling" in described["style"]["pooling"]
    calls = []
    objective.taps.layers[0].register_forward_hook(lambda *a: calls.append(1))
    objective(x)
    assert len(calls) == 1  # content and style from one pass through the trunk


def test_stylize_lowers_the_objective_with_either_optimizer_and_each_start(vgg19):
    content, style = torch.rand(1, 3, 40, 32), torch.rand(3, 64, 48)
    for optimizer, init in (("lbfgs", "noise"), ("adam", "content"), ("adam", "style")):
        steps = []
        objective = NeuralStyle(vgg19, style_weight=50.0)
        picture = stylize(content, style, objective, optimizer=optimizer, steps=12, init=init, callback=steps.append)
        assert picture.shape == (1, 3, 40, 32) and picture.min() >= 0 and picture.max() <= 1
        assert [s.step for s in steps] == list(range(1, 13)) and steps[-1].steps == 12
        assert steps[-1].loss < steps[0].loss, (optimizer, init)
        if init == "content":
            assert steps[0].terms["content"] == 0
    a = stylize(content, style, steps=2, init="noise", seed=4, model=vgg19)  # an objective made from the options
    b = stylize(content, style, steps=2, init="noise", seed=4, model=vgg19)
    c = stylize(content, style, steps=2, init="noise", seed=5, model=vgg19)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_grey_network_stylizes_grey_pictures():
    grey = tiny("vgg19", fc_width=16, in_channels=1)
    picture = stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 40, 40), model=grey, steps=3, style_weight=5.0)
    assert picture.shape == (1, 1, 32, 32)


def test_bad_arguments_are_sentences(vgg19):
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown optimizer"):
        stylize(content, style, model=vgg19, optimizer="sgd")
    with pytest.raises(ValueError, match="unknown init"):
        stylize(content, style, model=vgg19, init="zeros")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        stylize(content, style, model=vgg19, steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        stylize(content, style, model=vgg19, lr=float("nan"))
    with pytest.raises(ValueError, match="style_weight must be a finite number"):
        NeuralStyle(vgg19, style_weight=-1.0)
    with pytest.raises(ValueError, match="unknown losses"):
        NeuralStyle(vgg19, losses="johnson")
    with pytest.raises(ValueError, match="need at least 16 px a side"):
        stylize(torch.rand(1, 3, 12, 40), style, model=vgg19)
    with pytest.raises(ValueError, match="one grey or RGB image"):
        stylize(torch.rand(2, 3, 32, 32), style, model=vgg19)
    with pytest.raises(ValueError, match="set the content and style images first"):
        NeuralStyle(vgg19)(content)


def test_pictures_are_read_at_a_size_and_written_atomically(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(png(60, 40, seed=2))
    picture = read_picture(path, 30)
    assert picture.shape == (1, 3, 20, 30) and picture.dtype == torch.float32
    assert read_picture(path, 30, channels=1).shape == (1, 1, 20, 30)
    out = save_picture(picture, tmp_path / "sub" / "out.jpg")
    assert out.read_bytes()[:2] == b"\xff\xd8" and [p.name for p in out.parent.iterdir()] == ["out.jpg"]
    again = read_picture(save_picture(picture, tmp_path / "out.png"))
    torch.testing.assert_close(again, picture, rtol=0, atol=0.6 / 255)
    assert picture_format("x.webp") == "WEBP"
    with pytest.raises(ValueError, match="cannot write a picture as x.txt"):
        picture_format("x.txt")
    with pytest.raises(ValueError, match="no such image"):
        read_picture(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        read_picture(tmp_path / "text.png")


def test_the_normalised_network_from_a_folder(tmp_path, vgg19):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png(48, 40, seed=i))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    net, count, skipped = normalized_on_folder(vgg19, folder, size=40, pooling="avg")
    assert count == 3 and len(skipped) == 1 and "broken.jpg" in skipped[0]
    images = [read_picture(folder / f"{i}.png", 40) for i in range(3)]
    for mean in mean_activations(net, images, net.normalization, "avg").values():
        active = mean > 0
        torch.testing.assert_close(mean[active], torch.ones_like(mean[active]), rtol=1e-4, atol=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.png").write_text("no")
    with pytest.raises(ValueError, match="none of the 1 images"):
        normalized_on_folder(vgg19, empty)
