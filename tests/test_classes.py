"""A folder's classes meet a model's by name, never silently by position: eval, the probe, features' labels,
fine-tuning and a run's val/ folder all go through vggnet.base.classes."""

import json
import subprocess
import sys
import unicodedata

import pytest
import torch
from PIL import Image

import vggnet
from vggnet.base.classes import ClassMatching, match_classes, name_key, read_class_map
from vggnet.cli import main
from vggnet.commands.probe import linear_probe
from vggnet.inference.descriptors import FeatureSet, load_features
from vggnet.training.pretrained import load_pretrained

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
ON_DISK = {"T-shirt/top": "T-shirt_top"}  # what a folder can be called
FRUIT = ["apple_red", "leaf_green", "sea_blue"]
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 0), (255, 0, 255), (0, 255, 255),
           (255, 255, 255), (128, 128, 0), (128, 0, 128)]  # fmt: skip


def colour_model(classes):
    """A VGG right on every solid image of ``COLOURS[k]`` for class k: conv1_1 passes the colour through, the head
    scores each class by its distance to the class's colour (nearest centroid is linear)."""
    k = len(classes)
    model = vggnet.VGG([3, "M"], num_classes=k, pool_size=1, fc_width=3, dropout=0.0)
    centres = torch.tensor(COLOURS[:k], dtype=torch.float32) / 255
    with torch.no_grad():
        conv = model.features[0]
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(3):
            conv.weight[c, c, 1, 1] = 1.0
        for fc in (model.classifier[0], model.classifier[3]):
            fc.weight.copy_(torch.eye(3))
            fc.bias.zero_()
        model.classifier[6].weight.copy_(20 * 2 * centres)
        model.classifier[6].bias.copy_(-20 * (centres**2).sum(1))
    return model.eval()


def save_colour_model(path, classes):
    meta = {"classes": json.dumps(classes), "mean": "[0, 0, 0]", "std": "[1, 1, 1]", "crop": "16", "scale": "16"}
    return vggnet.save_weights(colour_model(classes), path, metadata=meta)


def colour_folder(root, names, per_class=2):
    """Solid images of ``COLOURS[k]`` in the folder ``names[k]``."""
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (16 + i, 16), COLOURS[k]).save(root / name / f"{i}.png")
    return root


def eval_top1(capsys, out, *args):
    """(exit status, top-1 error in percent) of ``vggnet eval``, or (exit status, stderr) where it fails."""
    code = main(["eval", *args, "--out", str(out), "--protocols", "center", "--scales", "16"])
    captured = capsys.readouterr()
    if code:
        return code, captured.err
    report = json.loads((out / "eval.json").read_text())
    return code, report["rows"][0]["cells"]["centre crop, Q=16"]["top1_err"]


# -- the rule ---------------------------------------------------------------------------------------------------------
def test_names_match_exactly_by_subset_and_by_the_stated_rule():
    assert match_classes(["Trouser", "Bag"], FASHION).index == [1, 8]
    assert match_classes(["Trouser", "Bag"], FASHION).note is None
    found = match_classes(sorted([ON_DISK.get(c, c) for c in FASHION]), FASHION, "DIR", "m.safetensors")
    assert [FASHION[i] for i in found.index] == sorted(FASHION, key=lambda c: ON_DISK.get(c, c))
    assert "T-shirt_top -> T-shirt/top" in found.note and "Trouser" not in found.note
    for written in ("T-shirt_top", "T-shirt-top", "T-shirt top", "T-shirttop", "t-shirt_TOP", "T-shirt：top"):
        assert match_classes([written], FASHION).index == [0], written
    assert match_classes(["ankle_boot"], FASHION).index == [9]
    # macOS writes file names decomposed: é as e + a combining accent
    assert match_classes([unicodedata.normalize("NFD", "café")], ["café", "tea"]).index == [0]
    assert name_key("T-shirt/top") == name_key("tshirt top") == "tshirttop"


def test_names_that_do_not_match_are_a_sentence_naming_both_sides_and_the_way_out():
    with pytest.raises(ValueError) as err:
        match_classes(["red", "green", "blue"], FRUIT, "DIR", "w.safetensors")
    message = str(err.value)
    assert "3 of the 3 classes of DIR (red, green, blue) are not among the 3 classes of w.safetensors" in message
    assert "(apple_red, leaf_green, sea_blue)" in message and "--class-map FILE" in message
    assert "--classes-by-position" in message and "\n" not in message
    with pytest.raises(ValueError, match=r"1 of the 3 classes of the folder \(zebra\) is not among") as err:
        match_classes(["Bag", "Coat", "zebra"], FASHION)  # a class the model lacks
    assert "--classes-by-position" not in str(err.value)  # other counts: position cannot be what is meant
    with pytest.raises(ValueError, match=r"\(crane\) is not among"):
        match_classes(["crane"], ["crane", "crane", "goose"])  # two model classes of one name: no guess
    with pytest.raises(ValueError, match=r"\(T_shirt_top\) is not among"):
        match_classes(["T_shirt_top"], ["T-shirt/top", "T shirt top"])


def test_position_only_when_asked_or_when_the_model_names_nothing():
    found = match_classes(["red", "green", "blue"], FRUIT, by_position=True)
    assert found.index == [0, 1, 2] and "by position" in found.note
    with pytest.raises(ValueError, match="--classes-by-position needs as many classes on both sides"):
        match_classes(["red", "green"], FRUIT, by_position=True)
    with pytest.raises(ValueError, match="either --class-map or --classes-by-position"):
        match_classes(["red"], FRUIT, class_map={"red": "apple_red"}, by_position=True)
    unnamed = ["class 0", "class 1", "class 2"]
    found = match_classes(["blue", "green", "red"], unnamed, "DIR", "w.pth")
    assert found.index == [0, 1, 2] and "w.pth names no classes" in found.note and "blue, green, red" in found.note
    with pytest.raises(ValueError, match=r"not among the classes of w.pth, which names none \(its 3 outputs\)"):
        match_classes(["a", "b"], unnamed, "DIR", "w.pth")
    assert match_classes(["class0", "class1", "class2"], unnamed).note  # placeholders are no names to match


def test_a_class_map_as_json_or_lines(tmp_path):
    (tmp_path / "map.json").write_text(json.dumps({"red": "apple_red", "blue": "Sea Blue"}))
    (tmp_path / "map.txt").write_text("# folder = model\n\nred = apple_red\n  blue=sea_blue\n")
    for name in ("map.json", "map.txt"):
        mapping = read_class_map(tmp_path / name)
        found = match_classes(["blue", "green", "red"], FRUIT, class_map={**mapping, "green": "leaf_green"})
        assert found.index == [2, 1, 0]
    with pytest.raises(ValueError, match=r"\(green\) is not among"):  # what the map leaves out matches by name
        match_classes(["blue", "green", "red"], FRUIT, class_map=read_class_map(tmp_path / "map.txt"))
    with pytest.raises(ValueError, match="sends red to apple, which is not among the classes of the model"):
        match_classes(["red"], FRUIT, class_map={"red": "apple"})
    (tmp_path / "bad.txt").write_text("red -> apple_red\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 1: expected FOLDER = MODEL"):
        read_class_map(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text('{"red": 3}')
    with pytest.raises(ValueError, match="must map names to names"):
        read_class_map(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no such class map"):
        read_class_map(tmp_path / "nope.json")


# -- eval -------------------------------------------------------------------------------------------------------------
def test_eval_refuses_other_names_and_scores_zero_error_through_a_class_map(tmp_path, capsys):
    weights = str(save_colour_model(tmp_path / "fruit.safetensors", FRUIT))
    data = colour_folder(tmp_path / "fruit", FRUIT)
    assert eval_top1(capsys, tmp_path / "e0", "--weights", weights, "--data", str(data)) == (0, 0.0)
    colours = colour_folder(tmp_path / "colours", ["red", "green", "blue"])  # sorted: blue, green, red
    code, err = eval_top1(capsys, tmp_path / "e1", "--weights", weights, "--data", str(colours))
    assert code == 2 and len(err.strip().splitlines()) == 1  # not 66.67 % error by position
    assert "(blue, green, red) are not among the 3 classes of" in err and "apple_red, leaf_green, sea_blue" in err
    (tmp_path / "map.json").write_text(json.dumps({"red": "apple_red", "green": "leaf_green", "blue": "sea_blue"}))
    args = ["--weights", weights, "--data", str(colours), "--class-map", str(tmp_path / "map.json")]
    assert eval_top1(capsys, tmp_path / "e2", *args) == (0, 0.0)
    # asked for, position is position: blue, green, red against apple_red, leaf_green, sea_blue
    args = ["--weights", weights, "--data", str(colours), "--classes-by-position"]
    assert eval_top1(capsys, tmp_path / "e3", *args) == (0, pytest.approx(100 * 4 / 6, abs=0.01))


def test_a_fashion_mnist_model_on_folders_named_as_folders_can_be(tmp_path, capsys):
    weights = str(save_colour_model(tmp_path / "fashion.safetensors", FASHION))
    data = colour_folder(tmp_path / "data", [ON_DISK.get(c, c) for c in FASHION])
    code = main(["eval", "--weights", weights, "--data", str(data), "--out", str(tmp_path / "e"), "--protocols",
                 "center", "--scales", "16"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and err.count("T-shirt_top -> T-shirt/top") == 1 and "ignoring case" in err
    report = json.loads((tmp_path / "e" / "eval.json").read_text())  # by names: right on every image
    assert report["images"] == 20 and report["rows"][0]["cells"]["centre crop, Q=16"]["top1_err"] == 0.0
    by_position = ["--weights", weights, "--data", str(data), "--classes-by-position"]
    assert eval_top1(capsys, tmp_path / "p", *by_position) == (0, pytest.approx(60.0))  # 6 of 10 folders elsewhere


def test_a_model_that_names_no_classes_is_taken_by_position_and_says_so(tmp_path, capsys):
    meta = {"mean": "[0, 0, 0]", "std": "[1, 1, 1]", "crop": "16", "scale": "16"}
    weights = str(vggnet.save_weights(colour_model(FRUIT), tmp_path / "unnamed.safetensors", metadata=meta))
    data = colour_folder(tmp_path / "data", ["a_red", "b_green", "c_blue"])
    assert eval_top1(capsys, tmp_path / "e", "--weights", weights, "--data", str(data)) == (0, 0.0)
    code = main(["eval", "--weights", weights, "--data", str(data), "--out", str(tmp_path / "e"), "--protocols",
                 "center", "--scales", "16"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and err.count("unnamed.safetensors names no classes: its 3 outputs are taken as") == 1
    two = colour_folder(tmp_path / "two", ["a", "b"])
    code, err = eval_top1(capsys, tmp_path / "e2", "--weights", weights, "--data", str(two))
    assert code == 2 and "which names none (its 3 outputs)" in err


def test_eval_on_a_folder_with_a_class_the_model_lacks_is_a_sentence(tmp_path):
    weights = str(save_colour_model(tmp_path / "fruit.safetensors", FRUIT))
    data = colour_folder(tmp_path / "data", [*FRUIT, "zebra"][::-1])
    proc = subprocess.run(
        [sys.executable, "-m", "vggnet", "eval", "--weights", weights, "--data", str(data), "--protocols", "center",
         "--out", str(tmp_path / "e")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "(zebra) is not among the 3 classes of" in proc.stderr and "--class-map" in proc.stderr


# -- the probe and features' labels -------------------------------------------------------------------------------
def separable(classes, per_class=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(classes)).repeat_interleave(per_class)
    features = torch.nn.functional.one_hot(labels, 8).float() + 0.05 * torch.randn(len(labels), 8, generator=g)
    return FeatureSet(features, labels, list(classes), [str(i) for i in range(len(labels))], {})


def test_the_probe_matches_test_classes_to_training_classes_by_name():
    train = separable(["T-shirt/top", "Trouser", "Bag"])
    labels = torch.arange(3).repeat_interleave(4)  # Bag, T-shirt_top, Trouser: the training set's 2, 0, 1
    features = torch.nn.functional.one_hot(torch.tensor([2, 0, 1])[labels], 8).float()
    test = FeatureSet(features, labels, ["Bag", "T-shirt_top", "Trouser"], [str(i) for i in range(12)], {})
    assert linear_probe(train, test).accuracy == 1.0
    assert linear_probe(train, test, matching=ClassMatching(classes_by_position=True)).accuracy == 0.0
    with pytest.raises(ValueError, match=r"\(x, y, z\) are not among the 3 classes of the training set"):
        linear_probe(train, separable(["x", "y", "z"]))


def test_features_label_images_with_the_model_classes_when_asked(tmp_path):
    weights = str(save_colour_model(tmp_path / "fruit.safetensors", FRUIT))
    data = colour_folder(tmp_path / "data", ["red", "green", "blue"])
    (tmp_path / "map.txt").write_text("red = apple_red\ngreen = leaf_green\nblue = sea_blue\n")
    common = ["features", "--weights", weights, "--data", str(data), "--layer", "pool1", "--scales", "16"]
    assert main([*common, "--out", str(tmp_path / "own.safetensors")]) == 0
    own = load_features(tmp_path / "own.safetensors")
    assert own.classes == ["blue", "green", "red"]  # the folder's names, as they are
    assert main([*common, "--out", str(tmp_path / "mapped.safetensors"), "--class-map", str(tmp_path / "map.txt")]) == 0
    mapped = load_features(tmp_path / "mapped.safetensors")
    assert mapped.classes == FRUIT
    renamed = {"blue": "sea_blue", "green": "leaf_green", "red": "apple_red"}
    assert [mapped.classes[i] for i in mapped.labels] == [renamed[own.classes[i]] for i in own.labels]


# -- fine-tuning and a run's val/ ----------------------------------------------------------------------------------
def test_fine_tuning_keeps_fc8_rows_by_name_and_never_by_position_unasked(tmp_path):
    source = colour_model(FASHION)
    path = vggnet.save_weights(source, tmp_path / "w.safetensors", metadata={"classes": json.dumps(FASHION)})
    rows = source.classifier[6].weight
    folders = sorted(ON_DISK.get(c, c) for c in FASHION)
    target = colour_model(FASHION)
    report = load_pretrained(target, path, folders)
    order = [FASHION.index(c) for c in sorted(FASHION, key=lambda c: ON_DISK.get(c, c))]
    assert torch.equal(target.classifier[6].weight, rows[order]) and not report.new
    assert any("T-shirt_top -> T-shirt/top" in a for a in report.adapted)
    subset = colour_model(["Bag", "Coat"])
    report = load_pretrained(subset, path, ["Bag", "Coat"])
    assert torch.equal(subset.classifier[6].weight, rows[[8, 4]])
    assert report.adapted == ["fc8 (the rows of the data's 2 classes, of its 10)"]
    fruit = colour_model(FRUIT)
    three = vggnet.save_weights(fruit, tmp_path / "three.safetensors", metadata={"classes": json.dumps(FRUIT)})
    other = colour_model(FRUIT)
    report = load_pretrained(other, three, ["blue", "green", "red"])  # not matched: fc8 is new, and the way out said
    assert report.new and "--class-map FILE or --classes-by-position" in report.new[0]
    mapped = colour_model(FRUIT)
    asked = ClassMatching(classes_by_position=True)
    report = load_pretrained(mapped, three, ["blue", "green", "red"], asked)
    assert torch.equal(mapped.classifier[6].weight, fruit.classifier[6].weight) and "by position" in str(report)
    (tmp_path / "bad.json").write_text('{"blue": "sky"}')
    with pytest.raises(ValueError, match="sends blue to sky"):
        load_pretrained(colour_model(FRUIT), three, ["blue", "green", "red"], ClassMatching(str(tmp_path / "bad.json")))


def test_the_flags_without_weights_to_match_are_refused(tmp_path, capsys):
    code = main(["train", "--dataset", "synthetic", "--classes-by-position", "--out", str(tmp_path / "run")])
    assert code == 2 and "give --weights" in capsys.readouterr().err


def test_a_runs_val_folder_meets_its_training_classes_by_name(tmp_path):
    from vggnet.data.opening import open_test_set
    from vggnet.training.settings import TrainConfig

    colour_folder(tmp_path / "d" / "val", ["Bag", "T-shirt_top"])
    cfg = TrainConfig(dataset="folder", data=str(tmp_path / "d"))
    val = open_test_set(cfg, FASHION)
    assert val.classes == FASHION and sorted(set(val.labels.tolist())) == [0, 8]
    assert [label for _, label in val.samples] == [8, 8, 0, 0]
    colour_folder(tmp_path / "d" / "val", ["zebra"])
    with pytest.raises(ValueError, match=r"\(zebra\) is not among the 10 classes of .*train .*name the class folders"):
        open_test_set(cfg, FASHION)
