"""Fine-tuning: what is loaded, what is new, adapted inputs, frozen layers, rates and normalisation."""

import json

import pytest
import torch
from helpers import TINY_TRAIN, make_folder, randomise_bn, tiny

import vggnet
from vggnet.cli import main
from vggnet.data.opening import open_datasets
from vggnet.formats.pytorch import read_metadata
from vggnet.network.weights import read_file
from vggnet.training.loop import train
from vggnet.training.pretrained import adapt_input_conv, load_pretrained
from vggnet.training.settings import TrainConfig, load_recipe
from vggnet.training.setup import make_optimizer


def randomised(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model


def test_another_class_count_loads_everything_but_fc8(tmp_path):
    source = randomised(tiny("vgg11_bn", num_classes=10))
    path = vggnet.save_weights(source, tmp_path / "src.safetensors")
    target = tiny("vgg11_bn", num_classes=2)
    fresh_fc8 = target.classifier[6].weight.clone()
    report = load_pretrained(target, path)
    assert report.new == [f"fc8 (2 classes; {path} has 10)"] and report.adapted == []
    assert report.loaded[0] == "conv1_1" and report.loaded[-1] == "fc7" and "fc8" not in report.loaded
    assert "bn1_1" in report.loaded and len(report.loaded) == 8 + 8 + 2
    theirs, ours = source.state_dict(), target.state_dict()
    for key in ours:
        if key.startswith("classifier.6."):
            continue
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.equal(target.classifier[6].weight, fresh_fc8)
    assert "fc8" in str(report) and "newly initialised" in str(report)


def test_any_other_mismatch_is_an_error_naming_the_keys(tmp_path):
    path = vggnet.save_weights(tiny("vgg11", num_classes=10), tmp_path / "src.safetensors")
    with pytest.raises(
        ValueError, match=r"mis-shaped .*features.0.weight: expected \(8, 3, 3, 3\), got \(4, 3, 3, 3\)"
    ):
        load_pretrained(tiny("vgg11", num_classes=10, width=1 / 8), path)
    with pytest.raises(ValueError, match=r"missing .*features.1.running_mean"):
        load_pretrained(tiny("vgg11_bn", num_classes=10), path)
    with pytest.raises(ValueError, match=r"mis-shaped .*classifier.3.weight"):
        load_pretrained(tiny("vgg11", num_classes=10, fc_width=16), path)


@pytest.mark.parametrize(("have", "want"), [(3, 1), (1, 3), (3, 6)])
def test_conv1_1_is_adapted_to_another_channel_count(tmp_path, have, want):
    source = tiny("vgg11", in_channels=have)
    path = vggnet.save_weights(source, tmp_path / "src.safetensors")
    target = tiny("vgg11", in_channels=want)
    report = load_pretrained(target, path)
    assert report.adapted == [f"conv1_1 ({have} -> {want} input channels)"]
    # a gray image gives what its colour copy gave: the adapted filter sees the same signal
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        expected = source.layer("conv1_1")(gray.expand(-1, have, -1, -1))
        got = target.layer("conv1_1")(gray.expand(-1, want, -1, -1))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_adapt_input_conv_matches_timms_rules():
    w = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    four = adapt_input_conv(w, 4)
    torch.testing.assert_close(four[:, :3], w * 3 / 4)
    torch.testing.assert_close(four[:, 3], w[:, 0] * 3 / 4)
    torch.testing.assert_close(adapt_input_conv(w[:, :1], 3), w[:, :1].expand(-1, 3, -1, -1) / 3)


def test_freezing_names_layers_and_keeps_bn_in_inference_mode():
    model = tiny("vgg16_bn")
    frozen = model.freeze("conv2_1")
    assert frozen[-1] == "bn2_1" and frozen[0] == "conv1_1" and "bn1_2" in frozen  # conv2_1 with its batch norm
    trainable = {n for n in model.layer_names if any(p.requires_grad for p in model.layer(n).parameters())}
    assert "conv2_1" not in trainable and "bn2_1" not in trainable and "bn2_2" in trainable
    model.train()
    assert not model.layer("bn2_1").training and model.layer("bn2_2").training and model.training
    assert len(model.freeze("features")) == len(model.features)
    assert all(not p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert model.freeze("none") == [] and all(p.requires_grad for p in model.parameters())
    assert model.freeze("fc7")[-1] == "fc7"
    with pytest.raises(ValueError, match="freezing fc8 would leave nothing to train"):
        model.freeze("fc8")
    with pytest.raises(ValueError, match="unknown layer 'conv9_9'"):
        model.freeze("conv9_9")


def pretrained_tiny(tmp_path, channels=3, classes=6):
    model = randomised(vggnet.build("vgg11_bn", width=1 / 16, pool_size=1, fc_width=32, num_classes=classes,
                                    in_channels=channels))  # fmt: skip
    meta = {"mean": json.dumps([0.3] * channels), "std": json.dumps([0.2] * channels), "crop": "32"}
    return model, vggnet.save_weights(model, tmp_path / "pretrained.safetensors", metadata=meta)


def test_frozen_layers_are_bit_for_bit_what_was_loaded_after_training(tmp_path):
    source, path = pretrained_tiny(tmp_path)
    cfg = TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=2, batch_size=32, lr=0.05, out=str(tmp_path / "run"))
    cfg.weights, cfg.freeze = str(path), "conv3_2"
    result = train(cfg)
    after = read_file(result.weights)
    before = source.state_dict()
    model = vggnet.build("vgg11_bn", width=1 / 16, pool_size=1, fc_width=32, num_classes=4)
    frozen = set(model.layer_names[: model.layer_index("bn3_2") + 1])  # conv3_2 and its batch norm
    for key, value in after.items():
        index = int(key.split(".")[1])
        name = model.layer_names[index] if key.startswith("features") else None
        if name in frozen:  # weights, biases and BN running statistics alike
            assert torch.equal(value, before[key]), key
        elif key.startswith("features") and key.endswith("weight"):
            assert not torch.equal(value, before[key]), key  # the rest trained


def test_the_optimizer_holds_only_trainable_parameters_at_their_rates(tmp_path):
    source, path = pretrained_tiny(tmp_path)
    cfg = TrainConfig(**TINY_TRAIN, dataset="synthetic", lr=0.1, pretrained_lr_scale=0.1, freeze="conv2_1")
    cfg.weights = str(path)
    data = open_datasets(cfg)
    from vggnet.training.setup import make_model

    model, report = make_model(cfg, data, vggnet.network.weights.read_weights(path))
    optimizer = make_optimizer(model, cfg, report, torch.device("cpu"))
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert sum(p.requires_grad for p in model.parameters()) == len(rates)
    assert all(rates[id(p)] == pytest.approx(0.1) for p in model.classifier[6].parameters())
    assert all(rates[id(p)] == pytest.approx(0.01) for p in model.layer("conv3_1").parameters())
    assert all(id(p) not in rates for p in model.layer("conv1_1").parameters())


def test_a_gray_model_fine_tunes_on_a_colour_folder_and_says_what_it_did(tmp_path, capsys):
    _, path = pretrained_tiny(tmp_path, channels=1, classes=10)
    root = tmp_path / "photos"
    make_folder(root / "train", bad=False)
    make_folder(root / "val", bad=False)
    args = ["train", "--data", str(root), "--weights", str(path), "--scale", "36", "--crop", "32", "--epochs", "1"]
    args += ["--batch-size", "4", "--amp", "off", "--no-progress", "--no-tensorboard", "--workers", "0"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"from {path}: conv1_1, bn1_1 ... fc6, fc7" in out
    assert f"newly initialised: fc8 (2 classes; {path} has 10)" in out
    assert "adapted: conv1_1 (1 -> 3 input channels)" in out
    assert "normalisation: mean [0.3, 0.3, 0.3], std [0.2, 0.2, 0.2] (from the weights file)" in out
    saved = read_metadata(tmp_path / "run" / "model.safetensors")
    assert saved["in_channels"] == 3 and saved["num_classes"] == 2 and saved["mean"] == [0.3] * 3
    # --normalize says otherwise
    assert main([*args, "--normalize", "meanstd", "--out", str(tmp_path / "run2")]) == 0
    assert "(from the training set)" in capsys.readouterr().out


def test_torchvision_weights_bring_torchvisions_normalisation(tmp_path, hub_dir, capsys):
    small = vggnet.build("vgg11", width=1 / 16, fc_width=32, pool_size=1)  # stands in for the 507 MB file
    cached = hub_dir / "checkpoints" / "vgg11-8a719046.pth"
    cached.parent.mkdir(parents=True)
    torch.save(small.state_dict(), cached)
    args = ["train", "--dataset", "synthetic", "--arch", "vgg11", "--width", "0.0625", "--fc-width", "32"]
    args += ["--pool-size", "1"]
    args += ["--weights", "torchvision", "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--amp", "off"]
    assert main([*args, "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "normalisation: mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]" in out
    assert "torchvision's ImageNet weights" in out and "newly initialised: fc8 (4 classes;" in out


def test_the_finetune_recipe_is_torchvisions_vgg16_bn_at_a_tenth_for_the_trunk():
    recipe = load_recipe("finetune")
    cfg = TrainConfig(**recipe)
    cfg.check()
    assert (cfg.arch, cfg.weights, cfg.normalize, cfg.pretrained_lr_scale) == ("vgg16_bn", "torchvision", "auto", 0.1)


def test_fc8_follows_class_names_where_both_sides_have_them(tmp_path):
    source = tiny("vgg11", num_classes=3)
    meta = {"classes": json.dumps(["cat", "dog", "owl"])}
    path = vggnet.save_weights(source, tmp_path / "src.safetensors", metadata=meta)
    same = tiny("vgg11", num_classes=3)
    assert load_pretrained(same, path, ["cat", "dog", "owl"]).new == []
    assert torch.equal(same.classifier[6].weight, source.classifier[6].weight)
    shuffled = tiny("vgg11", num_classes=3)
    report = load_pretrained(shuffled, path, ["owl", "cat", "dog"])
    assert report.adapted == ["fc8 (its rows put in the data's class order)"] and "fc8" in report.loaded
    assert torch.equal(shuffled.classifier[6].weight, source.classifier[6].weight[[2, 0, 1]])
    assert torch.equal(shuffled.classifier[6].bias, source.classifier[6].bias[[2, 0, 1]])
    other = tiny("vgg11", num_classes=3)
    fresh = other.classifier[6].weight.clone()
    report = load_pretrained(other, path, ["sandal", "shirt", "bag"])  # same count, other classes
    assert report.new == [
        f"fc8 (3 classes; not {path}'s cat, dog, owl...; if these are its classes by other names, --class-map FILE "
        "or --classes-by-position)"
    ]
    assert torch.equal(other.classifier[6].weight, fresh) and "fc8" not in report.loaded


def test_freezing_a_convolution_freezes_its_batch_norm_too(tmp_path, capsys):
    model = tiny("vgg11_bn", pool_size=1)
    assert model.freeze("conv2_1")[-1] == "bn2_1" and model.layer("bn2_1").training is False
    assert not any(p.requires_grad for p in model.layer("bn2_1").parameters())
    assert all(p.requires_grad for p in model.layer("conv3_1").parameters())
    weights = vggnet.save_weights(
        randomise_bn(tiny("vgg11_bn", pool_size=1, num_classes=4)), tmp_path / "w.safetensors"
    )
    before = vggnet.network.weights.read_file(weights)
    args = ["train", "--dataset", "synthetic", "--weights", str(weights), "--freeze", "conv2_1", "--epochs", "1",
            "--batch-size", "16", "--amp", "off", "--no-progress", "--no-tensorboard"]  # fmt: skip
    args += ["--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "frozen: conv1_1 ... bn2_1 (" in capsys.readouterr().out
    after = vggnet.network.weights.read_file(tmp_path / "run" / "model.safetensors")
    for key in ("features.5.weight", "features.5.bias", "features.5.running_mean", "features.5.running_var"):
        assert torch.equal(after[key], before[key]), key  # bn2_1: its scale, shift and statistics
    assert not torch.equal(after["features.9.running_mean"], before["features.9.running_mean"])  # bn3_1 trains
