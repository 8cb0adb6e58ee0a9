"""Descriptors (the paper's Appendix B) and the linear probe on them."""

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import make_folder, needs_fashion

import vggnet
from vggnet.cli import main
from vggnet.commands.probe import linear_probe
from vggnet.data.fashion_mnist import load_fashion_mnist
from vggnet.inference.descriptors import FeatureSet, load_features, save_features
from vggnet.inference.geometry import rescale
from vggnet.inference.loading import load_model


@pytest.fixture
def small_model(tmp_path):
    model = vggnet.build("vgg11_bn", width=1 / 16, pool_size=1, fc_width=32, num_classes=2).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    meta = {"classes": json.dumps(["cat", "dog"]), "mean": "[0.4, 0.5, 0.6]", "std": "[0.2, 0.25, 0.3]", "crop": "32"}
    return model, vggnet.save_weights(model, tmp_path / "small.safetensors", metadata=meta)


def expected_descriptor(model, image, layer, scales, mean, std):
    """Appendix B written out: the dense map of the image and its mirror at each Q, averaged, L2-normalised."""
    total = 0
    with torch.no_grad():
        for q in scales:
            x = rescale(image[None], q, mean, std)
            for view in (x, x.flip(3)):
                out = model.extract(view, layer, dense=True)[layer]
                total = total + out.mean((2, 3))
    return F.normalize(total / (2 * len(scales)), dim=1)[0]


@pytest.mark.parametrize(("layer", "scales"), [("fc7", [32]), ("relu7", [32, 48]), ("relu3_1", [40]), ("pool5", [64])])
def test_the_feature_file_holds_the_models_own_activations(tmp_path, small_model, layer, scales):
    model, weights = small_model
    make_folder(tmp_path / "photos", bad=True)
    out = tmp_path / "f.safetensors"
    argv = ["features", "--weights", str(weights), "--data", str(tmp_path / "photos"), "--layer", layer, "--out"]
    assert main([*argv, str(out), "--scales", *map(str, scales)]) == 0
    found = load_features(out)
    readable = 17  # make_folder's 20 files less 3 unreadable ones
    assert found.features.dtype == torch.float32 and found.labels.dtype == torch.int64
    assert found.features.shape[0] == readable == len(found.files) and found.classes == ["cat", "dog"]
    assert found.meta["layer"] == layer and json.loads(found.meta["scales"]) == scales
    assert torch.allclose(found.features.norm(dim=1), torch.ones(readable))
    loaded = load_model(weights)
    for i in (0, 5, 16):
        path = found.files[i]
        image = vggnet.data.images.decode_image(path)
        expected = expected_descriptor(loaded.model, image, layer, scales, loaded.mean, loaded.std)
        torch.testing.assert_close(found.features[i], expected, rtol=1e-4, atol=1e-5)
        assert found.classes[found.labels[i]] in path


def test_the_paper_head_needs_224_for_fc_layers(tmp_path):
    paper = vggnet.build("vgg11", width=1 / 16, fc_width=32, num_classes=2)
    weights = vggnet.save_weights(paper, tmp_path / "paper.safetensors")
    make_folder(tmp_path / "photos", bad=False)
    argv = ["features", "--weights", str(weights), "--data", str(tmp_path / "photos"), "--layer", "fc7"]
    argv += ["--scales", "128", "--out", str(tmp_path / "f.safetensors")]
    assert main(argv) == 2
    assert main([*argv[:-3], "224", "--out", str(tmp_path / "f.safetensors")]) == 0
    assert load_features(tmp_path / "f.safetensors").features.shape == (12, 32)


@needs_fashion
def test_features_of_a_fashion_mnist_split(tmp_path, small_model):
    gray = vggnet.build("vgg11_bn", width=1 / 16, pool_size=1, fc_width=32, num_classes=10, in_channels=1)
    weights = vggnet.save_weights(gray, tmp_path / "gray.safetensors", metadata={"crop": "32"})
    out = tmp_path / "fm.safetensors"
    argv = ["features", "--weights", str(weights), "--data", "fashion-mnist", "--split", "train", "--limit", "30"]
    assert main([*argv, "--out", str(out)]) == 0
    found = load_features(out)
    train = load_fashion_mnist(split="train")
    assert found.features.shape == (30, 32) and torch.equal(found.labels, train.labels[:30])
    assert found.classes[9] == "Ankle boot" and found.files[3] == "fashion-mnist/train/3"


def separable(n_per_class, classes, dim=16, seed=0):
    centres = torch.randn(len(classes), dim, generator=torch.Generator().manual_seed(99)) * 3
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(classes)).repeat_interleave(n_per_class)
    x = F.normalize(centres[labels] + 0.3 * torch.randn(len(labels), dim, generator=g), dim=1)
    return FeatureSet(x, labels, list(classes), [f"img{i}" for i in range(len(labels))], {})


def test_the_probe_separates_separable_features_and_prints_mean_class_accuracy(tmp_path, capsys):
    train = separable(20, ["a", "b", "c"])
    test = separable(10, ["a", "b", "c"], seed=1)
    report = linear_probe(train, test)
    assert report.mean_class_accuracy == 1.0 and report.accuracy == 1.0
    save_features(train, tmp_path / "train.safetensors")
    save_features(test, tmp_path / "test.safetensors")
    assert (
        main(["probe", "--train", str(tmp_path / "train.safetensors"), "--test", str(tmp_path / "test.safetensors")])
        == 0
    )
    out = capsys.readouterr().out
    assert "mean class accuracy: 100.00%" in out and "| b | 10 | 100.00% |" in out


def test_mean_class_accuracy_weighs_classes_equally():
    train = separable(20, ["a", "b"])
    test = separable(10, ["a", "b"], seed=1)
    test.labels[:8] = 1  # 8 of class a's 10 are now labelled b, which the probe will not say
    report = linear_probe(train, test)
    (n_a, acc_a), (n_b, acc_b) = report.per_class
    assert (n_a, n_b) == (2, 18) and acc_a == 1.0 and acc_b == pytest.approx(10 / 18)
    assert report.mean_class_accuracy == pytest.approx((1.0 + 10 / 18) / 2)
    assert report.accuracy == pytest.approx(12 / 20)


def test_probe_and_feature_files_refuse_bad_input(tmp_path):
    train = separable(5, ["a", "b"])
    with pytest.raises(ValueError, match=r"\(z\) is not among the 2 classes of the training set \(a, b\) by name"):
        linear_probe(train, separable(5, ["a", "z"]))
    with pytest.raises(ValueError, match="16-d training features, 8-d test features"):
        linear_probe(train, separable(5, ["a", "b"], dim=8))
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe(separable(5, ["a"]), separable(5, ["a"]))
    vggnet.save_weights(vggnet.build("vgg11", width=1 / 16, fc_width=8), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not a vggnet feature file: it lacks features, labels, classes, files"):
        load_features(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="ending in .safetensors"):
        save_features(train, tmp_path / "f.pt")
