import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import loaded, make_folder, randomise_bn, tiny

import vggnet
import vggnet.export.onnx
from vggnet.cli import main
from vggnet.data.sources import open_source
from vggnet.export import Int8Settings, export
from vggnet.inference.geometry import rescale
from vggnet.inference.loading import Loaded, load_model
from vggnet.training.loop import train
from vggnet.training.settings import TrainConfig


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


def compact(classes=2):
    """A small net with the compact head, BN statistics randomised: 32 x 32 images and up."""
    model = vggnet.build("vgg11_bn", width=1 / 8, pool_size=1, fc_width=32, num_classes=classes)
    return randomise_bn(model).eval()


def test_exported_onnx_carries_what_feeds_it_and_evaluates_like_pytorch(tmp_path):
    model = compact()
    results = export(Loaded(model, ["cat", "dog"], [0.5] * 3, [0.25] * 3, 32, "tiny"), tmp_path, ("onnx",))
    runner = load_model(results["onnx"]["path"])
    assert runner.classes == ["cat", "dog"] and runner.mean == [0.5] * 3 and runner.crop == 32
    assert runner.model.num_classes == 2 and runner.model.meta["precision"] == "float32"
    x = torch.randn(3, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(runner.model(x), model.score_map(x).mean((2, 3)), rtol=1e-4, atol=1e-5)
    make_folder(tmp_path / "data" / "val", bad=False)
    pt = vggnet.save_weights(model, tmp_path / "m.safetensors", metadata={"classes": '["cat", "dog"]', "crop": "32"})
    reports = []
    for weights in (results["onnx"]["path"], pt):
        out = tmp_path / Path(weights).stem
        argv = ["eval", "--weights", str(weights), "--data", str(tmp_path / "data"), "--out", str(out)]
        assert main([*argv, "--protocols", "center", "dense", "multicrop"]) == 0
        cells = json.loads((out / "eval.json").read_text())["rows"][0]["cells"]
        reports.append({k: (v["top1_err"], v["top5_err"]) for k, v in cells.items()})
    assert reports[0] == reports[1] and len(reports[0]) == 3  # the same errors under every protocol


def int8_setup(tmp_path):
    """A model trained a little on a folder of two colours, and that folder as calibration and check images."""
    root = tmp_path / "data"
    make_folder(root / "train", bad=False)
    make_folder(root / "val", bad=False)
    cfg = TrainConfig(
        arch="vgg11_bn", width=1 / 8, pool_size=1, fc_width=32, init="xavier", amp="off", progress=False,
        tensorboard=False, dataset="folder", data=str(root), scale=[36, 44], crop=32, epochs=3, batch_size=4,
        lr=0.02, workers=0, out=str(tmp_path / "run"),
    )  # fmt: skip
    train(cfg)
    loaded = load_model(tmp_path / "run" / "model.safetensors")
    calibration = open_source(str(root), split="train")
    held_out = open_source(str(root), split="val")
    return loaded, lambda **kw: Int8Settings(calibrate_on=calibration, check_on=held_out, **kw)


@pytest.mark.slow
def test_int8_export_is_quantised_checked_and_refused_when_it_disagrees(tmp_path):
    loaded, settings = int8_setup(tmp_path)
    result = export(loaded, tmp_path / "out", ("onnx",), int8=settings(calibration=8, min_agreement=0.0))
    path = Path(result["int8"]["path"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert result["int8"]["images"] == 12 and result["int8"]["scheme"] in ("u8s8", "u8s8-reduced")
    # the reported agreement and accuracies are what the two models do on those images
    runner = load_model(path)
    source = open_source(str(tmp_path / "data"), split="val")
    agree = right = 0
    for images, labels in source.batches():
        x = rescale(images, 32, loaded.mean, loaded.std)
        with torch.no_grad():
            a = loaded.model.score_map(x).mean((2, 3)).argmax(1)
        b = runner.model(x).argmax(1)
        agree, right = agree + int((a == b).sum()), right + int((b == labels).sum())
    assert result["int8"]["agreement"] == agree / 12 and result["int8"]["int8_accuracy"] == right / 12
    assert runner.model.meta["precision"].startswith("int8")
    with pytest.raises(ValueError, match="agrees with the float32 one on .* below 101%: not written"):
        export(loaded, tmp_path / "refused", ("onnx",), int8=settings(calibration=8, min_agreement=1.01))
    assert not (tmp_path / "refused" / "model.int8.onnx").exists()
    assert not list((tmp_path / "refused").glob(".model.int8.onnx.*"))
    with pytest.raises(ValueError, match="unknown int8 scheme 'u4'"):
        export(loaded, tmp_path / "x", ("onnx",), int8=settings(int8_scheme="u4"))


def test_onnx_files_that_are_not_ours_are_named_errors(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07 not onnx")
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        load_model(tmp_path / "bad.onnx")
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(plain, (torch.randn(1, 3, 8, 8),), str(tmp_path / "other.onnx"), dynamo=False)
    with pytest.raises(ValueError, match="was not exported by vggnet: its metadata lacks classes"):
        load_model(tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="no such exported model"):
        load_model(tmp_path / "missing.onnx")


def test_a_failed_export_leaves_the_earlier_set_whole(tmp_path):
    model = compact()
    first = export(Loaded(model, ["cat", "dog"], [0.5] * 3, [0.25] * 3, 32, "tiny"), tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert set(before) >= {"model.onnx", "model.torchscript.pt"}

    def failing(*args, **kwargs):
        raise ValueError("the int8 check failed")

    other = Loaded(compact(), ["cat", "dog"], [0.5] * 3, [0.25] * 3, 32, "tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vggnet.export.onnx, "export_int8", failing)
        with pytest.raises(ValueError, match="the int8 check failed"):
            export(other, tmp_path / "out", int8=Int8Settings())
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # no new file, no temporary
    assert first["onnx"]["path"] == str(tmp_path / "out" / "model.onnx")
    again = export(other, tmp_path / "out", ("onnx",))  # a smaller set replaces the whole earlier one
    assert again["removed"] == {"files": ["model.torchscript.pt"]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".vggnet.lock", "model.onnx"]


def contents(folder):
    """Every file's bytes but the lock's (it holds the last holder's process id)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".vggnet.lock"}


@pytest.mark.slow
def test_sigterm_during_export_leaves_no_mixture_and_no_temporaries(tmp_path):
    model = compact()
    vggnet.save_weights(model, tmp_path / "m.safetensors", metadata={"classes": '["cat", "dog"]', "crop": "32"})
    assert main(["export", "--weights", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "out")]) == 0
    before = contents(tmp_path / "out")
    slow = ("import sys, time, vggnet.export.onnx as e\nreal = e._compare\n"
            "def slow(*a, **k):\n    time.sleep(30)\n    return real(*a, **k)\n"
            "e._compare = slow\nfrom vggnet.cli import main\nsys.exit(main(sys.argv[1:]))")  # fmt: skip
    vggnet.save_weights(compact(), tmp_path / "n.safetensors", metadata={"classes": '["cat", "dog"]', "crop": "32"})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    argv = [sys.executable, "-c", slow, "export", "--weights", str(tmp_path / "n.safetensors"), "--out",
            str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until the new files are being built aside
        assert proc.poll() is None, proc.stderr.read()
        staged = list((tmp_path / "out").glob(".staging-*/*"))
        if staged:
            break
        time.sleep(0.1)
    assert staged, "the export never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in proc.stderr.read()
    assert contents(tmp_path / "out") == before


@pytest.mark.slow
def test_int8_calibrates_on_a_folder_of_any_layout_and_says_when_accuracy_cannot_be_measured(tmp_path, capsys):
    loaded, _ = int8_setup(tmp_path)
    flat = tmp_path / "photos"
    flat.mkdir()
    for i, png in enumerate(sorted((tmp_path / "data").rglob("*.png"))):
        png.rename(flat / f"{i}.png")  # no class folders at all
    result = export(
        loaded,
        tmp_path / "flat_out",
        ("onnx",),
        int8=Int8Settings(data=str(flat), calibration=14, check=10, min_agreement=0.0),
    )
    r = result["int8"]
    assert r["images"] == 10 and r["float_accuracy"] is None and "not in class folders" in r["accuracy_note"]
    named = tmp_path / "named"
    for i, png in enumerate(sorted(flat.iterdir())):
        (named / ("ships" if i % 2 else "planes")).mkdir(parents=True, exist_ok=True)
        png.rename(named / ("ships" if i % 2 else "planes") / png.name)
    weights = tmp_path / "run" / "model.safetensors"
    argv = ["export", "--weights", str(weights), "--out", str(tmp_path / "named_out"), "--format", "onnx", "--int8",
            "--data", str(named), "--calibration", "14", "--check", "10"]  # fmt: skip
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0 or "below 95%" in out, out
    if code == 0:
        assert "accuracy not measured: " in out and "classes (planes, ships" in out
