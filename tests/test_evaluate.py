import json

import pytest
import torch
from helpers import loaded, make_folder, saved_tiny, tiny

from vggnet.cli import main
from vggnet.commands.predict import predict
from vggnet.data.sources import Source
from vggnet.inference.geometry import posteriors
from vggnet.inference.loading import load_model
from vggnet.inference.protocols import evaluate, markdown


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
    from vggnet.inference.geometry import rescale

    x = rescale(images, 224, net.mean, net.std)
    predicted = posteriors(model, x, "center", 224).argmax(1)
    labels = predicted.clone()
    labels[:2] = (labels[:2] + 1) % 4  # two wrong on purpose
    report = evaluate([net], in_memory_source(images, labels, ["c0", "c1", "c2", "c3"]), [[224]], ["center"])
    assert report["rows"][0]["cells"]["centre crop, Q=224"]["top1_err"] == pytest.approx(25.0)


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
    # the dense Q=224 column counts exactly the images that dense prediction at Q=224 gets wrong
    model = load_model(path)
    files = sorted((tmp_path / "data" / "val").rglob("*.png"))
    wrong = sum(predict(model, [str(f)], top=1, scale=224)[0]["top"][0][0] != f.parent.name for f in files)
    assert cell["top1_err"] == pytest.approx(100 * wrong / 12) and cell["images_per_s"] > 0
    assert (tmp_path / "report" / "eval.md").read_text().count("\n| ") == 4
