import json

import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
import torchvision
from helpers import TINY_TRAIN, make_folder, tiny

import vggnet
from vggnet.cli import main
from vggnet.evaluate import Source, evaluate, grid_boxes, markdown, posteriors
from vggnet.export import export
from vggnet.inference import Loaded, fuse_batch_norm, load_model
from vggnet.predict import predict


def loaded(model, classes=None, crop=224):
    classes = classes or [f"c{i}" for i in range(model.num_classes)]
    return Loaded(model.eval(), classes, [0.5, 0.4, 0.3], [0.25, 0.25, 0.25], crop, "tiny")


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def test_dense_equals_the_fc_forward_at_224():
    model = tiny("vgg13")
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        expected = (F.softmax(model(x), 1) + F.softmax(model(x.flip(3)), 1)) / 2
    torch.testing.assert_close(posteriors(model, x, "dense", 224), expected, rtol=1e-4, atol=1e-6)


def test_dense_averages_the_flipped_score_map_at_larger_scales():
    model = tiny("vgg11")
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        a, b = model.score_map(x).mean((2, 3)), model.score_map(x.flip(3)).mean((2, 3))
    got = posteriors(model, x, "dense", 224)
    torch.testing.assert_close(got, (F.softmax(a, 1) + F.softmax(b, 1)) / 2)
    assert not torch.allclose(got, F.softmax(a, 1))  # the flip matters


def test_multicrop_grid_positions_and_count():
    boxes = grid_boxes(256, 320, 224)
    assert len(boxes) == 25
    assert sorted({t for t, _ in boxes}) == [0, 8, 16, 24, 32]
    assert sorted({left for _, left in boxes}) == [0, 24, 48, 72, 96]
    model = tiny("vgg11")
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    x = torch.randn(2, 3, 256, 320)
    p = posteriors(model, x, "multicrop", 224, chunk=7)
    assert sum(s[0] for s in seen) == 2 * 50 and all(s[-2:] == (224, 224) for s in seen)
    # equals the mean of the posteriors of all 50 crops, taken one by one
    crops = [x[:, :, t : t + 224, u : u + 224] for t, u in boxes]
    crops += [c.flip(3) for c in crops]
    with torch.no_grad():
        expected = torch.stack([F.softmax(model(c), 1) for c in crops]).mean(0)
    torch.testing.assert_close(p, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="smaller than the 224 crop"):
        grid_boxes(200, 300, 224)


def in_memory_source(images, labels, classes):
    return Source("memory", classes, lambda: iter([(images, labels)]), len(labels))


def test_an_ensemble_of_one_equals_the_model_and_protocols_combine():
    model = tiny("vgg11", num_classes=3)
    images = torch.randint(0, 256, (6, 3, 224, 240), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    source = in_memory_source(images, labels, ["c0", "c1", "c2"])
    single = evaluate([loaded(model)], source, [[224], [224, 256]], ["dense", "multicrop", "dense+multicrop"])
    double = evaluate(
        [loaded(model), loaded(model)],
        source,
        [[224], [224, 256]],
        ["dense", "multicrop", "dense+multicrop"],
        names=["a", "b"],
    )
    assert len(single["rows"]) == 1 and len(double["rows"]) == 3
    assert double["rows"][2]["model"] == "a + b (ensemble)"
    for column in single["columns"]:
        for key in ("top1_err", "top5_err"):
            assert double["rows"][2]["cells"][column][key] == pytest.approx(single["rows"][0]["cells"][column][key])
    assert single["columns"] == [
        "dense, Q=224",
        "multi-crop, Q=224",
        "multi-crop & dense, Q=224",
        "dense, Q={224,256}",
        "multi-crop, Q={224,256}",
        "multi-crop & dense, Q={224,256}",
    ]
    assert "| a + b (ensemble) |" in markdown(double)


def test_errors_are_counted_against_the_labels():
    model = tiny("vgg11", num_classes=4)
    images = torch.randint(0, 256, (8, 3, 224, 224), dtype=torch.uint8)
    net = loaded(model)
    from vggnet.evaluate import rescale

    x = rescale(images, 224, net.mean, net.std)
    predicted = posteriors(model, x, "center", 224).argmax(1)
    labels = predicted.clone()
    labels[:2] = (labels[:2] + 1) % 4  # two wrong on purpose
    report = evaluate([net], in_memory_source(images, labels, ["c0", "c1", "c2", "c3"]), [[224]], ["center"])
    assert report["rows"][0]["cells"]["centre crop, Q=224"]["top1_err"] == pytest.approx(25.0)


def test_bn_folding_keeps_outputs():
    model = randomise_bn(tiny("vgg16_bn"))
    fused = fuse_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    assert fused.layer_names == model.layer_names


def test_onnx_and_torchscript_parity_at_two_sizes(tmp_path):
    model = randomise_bn(tiny("vgg11_bn"))
    results = export(loaded(model), tmp_path)
    assert results["onnx"]["max_rel_error"] < 1e-4
    session = ort.InferenceSession(results["onnx"]["path"], providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(results["torchscript"]["path"])
    for batch, h, w in [(1, 224, 224), (3, 256, 320)]:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = model.score_map(x).mean((2, 3))
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(scripted(x), expected, rtol=1e-4, atol=1e-5)


def saved_tiny(tmp_path, classes=("cat", "dog")):
    model = tiny("vgg11_bn", num_classes=len(classes))
    meta = {"classes": json.dumps(list(classes)), "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "224"}
    return model, vggnet.save_weights(model, tmp_path / "tiny.safetensors", metadata=meta)


def test_predict_prints_top_classes_and_draws_a_heatmap(tmp_path, capsys):
    model, path = saved_tiny(tmp_path, ("cat", "dog", "owl"))
    make_folder(tmp_path / "imgs", bad=False)
    image = str(tmp_path / "imgs" / "cat" / "0.png")
    result = predict(load_model(path), [image], top=2)[0]
    names = [n for n, _ in result["top"]]
    probs = [p for _, p in result["top"]]
    assert len(names) == 2 and set(names) <= {"cat", "dog", "owl"} and probs[0] >= probs[1] and sum(probs) <= 1
    heat = tmp_path / "heat.png"
    assert main(["predict", "--weights", str(path), image, "--top", "3", "--heatmap", str(heat)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == image and out.count("%") == 3 and "owl" in out
    assert heat.read_bytes()[:4] == b"\x89PNG"


def test_eval_report_for_a_tiny_model_on_a_tiny_folder(tmp_path, capsys):
    _, path = saved_tiny(tmp_path)
    make_folder(tmp_path / "data" / "val", bad=False)
    code = main(
        [
            "eval",
            "--weights",
            str(path),
            "--weights",
            str(path),
            "--data",
            str(tmp_path / "data"),
            "--scales",
            "224",
            "--scales",
            "224",
            "256",
            "--protocols",
            "center",
            "dense",
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| model | centre crop, Q=224: top-1 / top-5 err (%) | img/s |" in out
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert report["images"] == 12 and len(report["rows"]) == 3
    assert report["columns"][-1] == "dense, Q={224,256}"
    cell = report["rows"][0]["cells"]["dense, Q=224"]
    assert 0 <= cell["top1_err"] <= 100 and cell["top5_err"] == 0.0 and cell["images_per_s"] > 0
    assert (tmp_path / "report" / "eval.md").read_text().count("\n| ") == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--weights", "{tmp}/missing.safetensors", "--data", "{tmp}/data"], "no such weights file"),
        (["eval", "--weights", "{w}", "--data", "{tmp}/data", "--scales", "200"], "Q=200 is smaller than the crop"),
        (["eval", "--weights", "{w}", "--data", "{tmp}/empty"], "has no class folders"),
        (["eval", "--weights", "{w}", "--data", "{tmp}/three"], "3 classes .* do not cover"),
        (["predict", "--weights", "{w}", "{tmp}/data/val/cat/nope.png"], "no such image"),
        (["predict", "--weights", "{w}", "{tmp}/bad.jpg"], "cannot read image .*bad.jpg"),
        (["eval", "--weights", "{tmp}/other.safetensors", "--arch", "vgg16"], "do not fit vgg16"),
        (["export", "--data", "x"], "unrecognized arguments"),
    ],
)
def test_bad_input_gives_a_clear_error_and_nonzero_exit(tmp_path, capsys, argv, message):
    _, path = saved_tiny(tmp_path)
    vggnet.save_weights(tiny("vgg11", num_classes=3), tmp_path / "other.safetensors")
    make_folder(tmp_path / "data" / "val", bad=False)
    (tmp_path / "empty").mkdir()
    make_folder(tmp_path / "three", bad=False)
    (tmp_path / "three" / "owl").mkdir()
    (tmp_path / "data" / "val" / "cat" / "0.png").rename(tmp_path / "three" / "owl" / "0.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    args = [a.format(tmp=tmp_path, w=path) for a in argv]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code != 0
    captured = capsys.readouterr()
    import re

    assert re.search(message, captured.err), captured.err


def test_training_outputs_load_for_inference(tmp_path):
    from vggnet.train import TrainConfig, train

    cfg = TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(tmp_path / "run"))
    train(cfg)
    from_checkpoint = load_model(tmp_path / "run" / "last.pt")
    from_weights = load_model(tmp_path / "run" / "model.safetensors")
    for m in (from_checkpoint, from_weights):
        assert m.crop == 32 and m.classes == ["class0", "class1", "class2", "class3"] and len(m.mean) == 3
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(from_checkpoint.model(x), from_weights.model(x))


def test_plain_weights_load_with_arch_and_class_count_from_fc8(tmp_path):
    theirs = torchvision.models.vgg11(num_classes=10)
    torch.save(theirs.state_dict(), tmp_path / "plain.pth")
    loaded_model = load_model(tmp_path / "plain.pth", arch="vgg11")
    assert loaded_model.model.num_classes == 10 and loaded_model.classes[3] == "class 3"
    assert loaded_model.mean == [0.485, 0.456, 0.406] and loaded_model.crop == 224
    with pytest.raises(ValueError, match="give --arch"):
        load_model(tmp_path / "plain.pth")


def test_imagenet_names_for_1000_class_models(tmp_path):
    from vggnet.inference import imagenet_classes

    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    model = tiny("vgg11", num_classes=1000)
    path = vggnet.save_weights(model, tmp_path / "imagenet_like.safetensors")
    assert load_model(path).classes == names
