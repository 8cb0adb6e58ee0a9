"""The command line: help, info, and a table of bad input, each of which must end in one clear message."""

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN, TINY_TRAIN_ARGS, loaded, make_folder, saved_tiny, tiny

import vggnet
from vggnet.base.files import folder_lock, save_safetensors
from vggnet.cli import main
from vggnet.export import export
from vggnet.training.loop import train
from vggnet.training.settings import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace of good and bad files, folders, weights and images, made once; a folder held by another command,
    a full disk (where a tmpfs can be mounted) and a server that never answers."""
    w = tmp_path_factory.mktemp("ws")
    with contextlib.ExitStack() as stack:
        yield make_workspace(w, stack)


def make_workspace(w: Path, stack: contextlib.ExitStack) -> Path:
    _, good = saved_tiny(w)
    (w / "weights").mkdir()
    data = good.read_bytes()
    (w / "weights" / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (w / "weights" / "text.pth").write_text("not weights at all\n")
    torch.save(tiny("vgg11").state_dict(), w / "weights" / "plain.pth")  # a plain state dict, no metadata
    vggnet.save_weights(tiny("vgg11", num_classes=3), w / "weights" / "other.safetensors")
    vggnet.save_weights(tiny("vgg11_bn", width=1 / 8, num_classes=2), w / "weights" / "wider.safetensors")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, w / "weights" / "evil.pth")
    (w / "weights" / "model.onnx").write_bytes(b"\x08\x07 not really onnx")
    make_folder(w / "data" / "val", bad=False)
    make_folder(w / "data" / "train", bad=False)
    make_folder(w / "noval" / "train", bad=False)
    make_folder(w / "holes" / "train", bad=False)
    make_folder(w / "holes" / "val", bad=False)
    (w / "holes" / "train" / "zebra").mkdir()
    make_folder(w / "three", bad=False)
    (w / "three" / "owl").mkdir()
    (w / "three" / "cat" / "0.png").rename(w / "three" / "owl" / "0.png")
    (w / "empty").mkdir()
    (w / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    (w / "empty.png").write_bytes(b"")
    (w / "a_file").write_text("keep me\n")
    (w / "recipes").mkdir()
    (w / "recipes" / "broken.toml").write_text("epochs = \n")
    (w / "recipes" / "typo.toml").write_text("learning_rate = 0.1\n")
    (w / "recipes" / "types.toml").write_text('epochs = "ten"\n')
    train(TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(w / "run")))
    vggnet.save_weights(tiny("vgg16_bn", pool_size=1, num_classes=4), w / "weights" / "vgg16.safetensors")
    features = torch.randn(4, 8)
    features[2, 3] = float("nan")
    meta = {"classes": '["a", "b"]', "files": '["0", "1", "2", "3"]'}
    save_safetensors({"features": features, "labels": torch.tensor([0, 1, 0, 1])}, w / "nan.safetensors", meta)
    export(loaded(tiny("vgg11_bn", num_classes=2)), w / "exported", ("onnx",))  # an earlier export to keep whole
    stack.enter_context(folder_lock(w / "locked"))  # another command's folder
    full = w / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], capture_output=True)
    if mounted.returncode == 0:
        stack.callback(subprocess.run, ["umount", "-l", str(full)], capture_output=True)
        with open(full / "filler", "wb") as f, contextlib.suppress(OSError):
            f.write(b"\0" * 2**21)
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    stack.callback(silent.close)
    (w / "port").write_text(str(silent.getsockname()[1]))
    env = stack.enter_context(pytest.MonkeyPatch.context())
    env.setenv("VGGNET_DOWNLOAD_TIMEOUT", "1")
    env.setenv("TORCH_HOME", str(w / "torch_home"))
    return w


TRAIN = [*TINY_TRAIN_ARGS, "--epochs", "1", "--batch-size", "8"]
EVAL = ["eval", "--weights", "{w}/tiny.safetensors", "--data", "{w}/data"]
FEAT = ["features", "--weights", "{w}/tiny.safetensors", "--data", "{w}/data"]
EXPORT = ["export", "--weights", "{w}/tiny.safetensors", "--out", "{w}/exported"]
CASES = [
    # files and folders
    (["train", "--out", "{w}/a_file"], r"--out .*a_file is a file"),
    ([*TRAIN, "--out", "{w}/run"], r"last.pt exists: pass --resume"),
    ([*TRAIN, "--out", "{w}/empty", "--resume"], r"no checkpoint at .*empty/last.pt"),
    ([*TRAIN, "--out", "{w}/run", "--resume", "--lr", "0.5"], r"would change it: .*--lr 0.5 \(the run has 0.01\)"),
    (["train", "--data", "{w}/nowhere", "--out", "{w}/o1"], r"data folder .*nowhere does not exist"),
    (["train", "--data", "{w}/empty", "--out", "{w}/o2"], r"holds neither Fashion-MNIST's idx files"),
    (["train", "--data", "{w}/holes", "--out", "{w}/o3"], r"class folder .*zebra holds no images"),
    (["train", "--dataset", "folder", "--data", "{w}/noval", "--out", "{w}/o4"], r"has no val/ folder"),
    # recipes
    (["train", "--recipe", "paper_s999"], r"no such recipe: paper_s999 \(shipped with vggnet: .*fashion_mnist"),
    (["train", "--recipe", "{w}/recipes/broken.toml"], r"broken.toml is not valid TOML"),
    (["train", "--recipe", "{w}/recipes/typo.toml"], r"unknown settings: learning_rate"),
    (["train", "--recipe", "{w}/recipes/types.toml"], r"epochs = 'ten' is not an integer"),
    # flags
    ([*TRAIN, "--arch", "vgg17"], r"unknown architecture 'vgg17'"),
    ([*TRAIN, "--lr", "-1"], r"argument --lr: must be positive, got -1"),
    (["train", "--epochs", "ten"], r"argument --epochs: invalid int value: 'ten'"),
    ([*TRAIN, "--micro-batch", "3", "--out", "{w}/o5"], r"micro-batch 3 does not divide the per-process batch 8"),
    ([*TRAIN, "--amp", "fp16", "--device", "cpu", "--out", "{w}/o6"], r"--amp fp16 needs a CUDA device"),
    ([*TRAIN, "--device", "cuda", "--out", "{w}/o7"], r"no CUDA device is available"),
    ([*TRAIN, "--device", "tpu", "--out", "{w}/o7"], r"unsupported device 'tpu'"),
    ([*TRAIN, "--dataset", "folder", "--data", "{w}/data", "--scale", "20"], r"at least the crop size 224"),
    ([*TRAIN, "--freeze", "conv9_9", "--out", "{w}/o8"], r"unknown layer 'conv9_9'"),
    ([*TRAIN, "--freeze", "fc8", "--out", "{w}/o9"], r"freezing fc8 would leave nothing to train"),
    # weights of every format
    ([*TRAIN, "--weights", "{w}/weights/missing.pth", "--out", "{w}/o10"], r"no such weights file"),
    ([*TRAIN, "--weights", "{w}/weights/truncated.safetensors"], r"truncated or not a safetensors file"),
    ([*TRAIN, "--weights", "{w}/weights/text.pth", "--out", "{w}/o11"], r"not a PyTorch weights file or truncated"),
    ([*TRAIN, "--weights", "{w}/weights/evil.pth", "--out", "{w}/o12"], r"holds pickled Python objects"),
    ([*TRAIN, "--weights", "{w}/weights/wider.safetensors", "--out", "{w}/o13"], r"contradict"),
    (["eval", "--weights", "{w}/weights/truncated.safetensors"], r"truncated or not a safetensors file"),
    (["eval", "--weights", "{w}/weights/plain.pth"], r"does not say which architecture .* give --arch"),
    (["eval", "--weights", "{w}/weights/other.safetensors", "--arch", "vgg16"], r"do not fit vgg16"),
    (["eval", "--weights", "{w}/bad.jpg"], r"cannot read weights from .*bad.jpg"),
    (["eval", "--weights", "{w}/weights"], r"weights is a folder; give a weights file$"),
    (["predict", "--weights", "{w}/run", "{w}/bad.jpg"], r"run is a folder; give a weights file \(it holds .*run/mod"),
    (["eval", "--weights", "torchvision"], r"names torchvision's weights: say which with --arch"),
    (["eval", "--weights", "file:///nowhere/w.pth"], r"no such weights file: /nowhere/w.pth"),
    (["eval", "--weights", "{w}/weights/model.onnx"], r"cannot load ONNX model .*model.onnx"),
    (
        [*TRAIN, "--weights", "{w}/weights/model.onnx", "--out", "{w}/o14"],
        r"cannot load ONNX model .*model.onnx: truncated or not an ONNX file",
    ),
    (["eval", "--data", "{w}/data"], r"give the model with --weights"),
    # images and evaluation data
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/nope.png"], r"no such image: .*nope.png"),
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/bad.jpg"], r"cannot read image .*bad.jpg"),
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/empty.png"], r"cannot read image .*empty.png"),
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/empty"], r"predict: error: .*empty holds no images \(\.bmp"),
    (
        ["predict", "--weights", "{w}/tiny.safetensors", "{w}/bad.jpg", "{w}/empty.png", "--heatmap", "{w}/h.png"],
        r"--heatmap draws one image",
    ),  # fmt: skip
    ([*EVAL[:3], "--data", "{w}/three"], r"\(owl\) is not among the 2 classes of .*tiny.safetensors \(cat, dog\)"),
    ([*EVAL, "--scales", "200"], r"Q=200 is smaller than the crop 224"),
    ([*EVAL[:3], "--data", "{w}/empty"], r"has no class folders"),
    ([*EVAL, "--out", "{w}/a_file"], r"--out .*a_file is a file"),
    ([*EVAL, "--limit", "0"], r"argument --limit: must be at least 1, got 0"),
    # features and the probe
    ([*FEAT, "--layer", "relu9_9", "--out", "{w}/f.safetensors"], r"unknown layer 'relu9_9'"),
    ([*FEAT[:3], "--data", "{w}/empty", "--out", "{w}/f.safetensors"], r"has no class folders"),
    ([*FEAT, "--split", "test", "--out", "{w}/f.safetensors"], r"data has no test/ folder"),
    ([*FEAT, "--out", "{w}/f.pt"], r"--out must end in .safetensors"),
    (["probe", "--train", "{w}/nope.safetensors", "--test", "{w}/nope.safetensors"], r"no such feature file"),
    (["probe", "--train", "{w}/tiny.safetensors", "--test", "{w}/tiny.safetensors"], r"not a vggnet feature file"),
    (["probe", "--train", "{w}/weights/truncated.safetensors", "--test", "{w}/x"], r"cannot read features"),
    # the other commands
    (["info", "--size", "16"], r"argument --size: must be at least 32, got 16"),
    (["info", "vgg17"], r"unknown architecture 'vgg17'"),
    (["export", "--weights", "{w}/tiny.safetensors", "--out", "{w}/a_file"], r"--out .*a_file is a file"),
    (["bench", "--device", "cuda"], r"no CUDA device is available"),
    (["export", "--frobnicate", "x"], r"unrecognized arguments: --frobnicate"),
    # a folder in use, a full disk, a network that never answers
    ([*TRAIN, "--out", "{w}/locked"], r"run folder .*locked is in use by another vggnet command \(process \d+\)"),
    ([*FEAT, "--out", "{w}/locked/f.safetensors"], None),  # another file in that folder is fine: it runs
    ([*TRAIN, "--out", "{w}/full/run"], r"No space left on device: .*full/run/"),
    (
        ["eval", "--weights", "http://127.0.0.1:{port}/vgg16-00000000.pth", "--arch", "vgg16"],
        r"could not download .*: no answer within 1 s .*--weights FILE",
    ),  # fmt: skip
    # outputs replaced only on success: every option is checked before any work
    ([*EXPORT, "--int8", "--calibration", "0"], r"argument --calibration: must be at least 1, got 0"),
    ([*EXPORT, "--opset", "3"], r"ONNX opset 3 cannot be written; opsets 7-\d+ work"),
    ([*EXPORT, "--int8", "--opset", "11"], r"ONNX opset 11 cannot be written with --int8; opsets 13-\d+ work"),
    ([*EXPORT, "--int8", "--data", "{w}/empty"], r"empty holds no images"),
    # every number checked where it is parsed, by every command
    ([*EVAL, "--batch-size", "0"], r"argument --batch-size: must be at least 1, got 0"),
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/bad.jpg", "--scale", "0"], r"--scale: must be at least 1"),
    (["predict", "--weights", "{w}/tiny.safetensors", "{w}/bad.jpg", "--scale", "-4"], r"--scale: must be at least 1"),
    ([*TRAIN, "--weight-decay", "nan"], r"argument --weight-decay: must be a finite number, got nan"),
    ([*TRAIN, "--lr", "inf"], r"argument --lr: must be a finite number, got inf"),
    ([*TRAIN, "--momentum", "1"], r"argument --momentum: must be in \[0, 1\), got 1"),
    (["probe", "--train", "{w}/nan.safetensors", "--test", "{w}/nan.safetensors", "--c", "nan"], r"--c: must be a "),
    (["reproduce", "--width", "0", "--plan"], r"argument --width: must be positive, got 0"),
    # a flag typed is never ignored, even when it equals the default
    (
        [
            "train",
            "--dataset",
            "synthetic",
            "--arch",
            "vgg11",
            "--weights",
            "{w}/weights/vgg16.safetensors",
            "--out",
            "{w}/o15",
        ],
        r"holds a vgg16_bn .* that --arch contradict",
    ),  # fmt: skip
    # commands that take one model say so, rather than failing to unpack a list
    (
        ["predict", "--weights", "{w}/tiny.safetensors", "--weights", "{w}/tiny.safetensors", "{w}/bad.jpg"],
        r"predict takes one model, got 2 --weights .*\(vggnet eval averages several\)",
    ),
    ([*EXPORT, "--weights", "{w}/tiny.safetensors"], r"export takes one model, got 2 --weights"),
    ([*FEAT, "--weights", "{w}/tiny.safetensors", "--out", "{w}/f.safetensors"], r"features takes one model"),
    # messages name the file and say what is wrong with it
    (
        ["probe", "--train", "{w}/nan.safetensors", "--test", "{w}/nan.safetensors"],
        r"nan.safetensors: 1 of 4 feature vectors hold NaN or infinite values \(the first at row 2\)",
    ),  # fmt: skip
    ([*FEAT, "--out", "{w}/a_file/f.safetensors"], r"cannot write .*a_file/f.safetensors: .*a_file is a file, not a"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[f"{i:02d}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_clear_message(ws, capsys, argv, message):
    if "{w}/full" in " ".join(argv) and not (ws / "full" / "filler").exists():
        pytest.skip("no tmpfs could be mounted to fill up (needs root): the full-disk case is not run")
    before = snapshot(ws)
    port = (ws / "port").read_text()
    try:
        code = main([a.format(w=ws, port=port) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    if message is None:  # a case that must work
        assert code == 0, err
        return
    assert code not in (0, None), err
    assert "Traceback" not in err and "unexpected error" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert re.search(message, err), err
    after = snapshot(ws)
    assert {k: after.get(k) for k in before} == before  # nothing that was there is changed or gone


def test_there_are_at_least_70_kinds_of_bad_input():
    assert len(CASES) >= 75 and len({c[1] for c in CASES}) >= 70


@pytest.mark.slow
def test_train_help_explains_each_flag():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "vggnet", "train", "--help"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    for flag in ("--arch", "--data", "--epochs", "--batch-size", "--lr", "--out", "--resume", "--recipe", "--device"):
        assert flag in out
    for flag in ("--seed", "--micro-batch", "--amp", "--compile", "--freeze", "--pretrained-lr-scale", "--log-every"):
        assert flag in out
    assert "scale jittering" in out


def test_a_bug_is_one_line_with_the_traceback_on_request(monkeypatch, capsys):
    import vggnet.commands.info

    def broken(size):
        raise TypeError("something inside broke")

    monkeypatch.setattr(vggnet.commands.info, "family_report", broken)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: TypeError: something inside broke" in err and "VGGNET_DEBUG" in err
    monkeypatch.setenv("VGGNET_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["info"])


def test_info_prints_table1_sizes_and_costs(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "conv1-256" in out and "LRN" in out and "A-LRN" in out  # Table 1 side by side
    d = next(line for line in out.splitlines() if line.split()[:2] == ["D", "vgg16"])
    assert "138,357,544" in d and "15.470" in d and "MiB" in d
    e_bn = next(line for line in out.splitlines() if line.split()[:2] == ["E", "vgg19_bn"])
    assert "143,678,248" in e_bn and "19.632" in e_bn
    assert main(["info", "vgg16", "--size", "384"]) == 0
    rows = capsys.readouterr().out.splitlines()
    conv11 = next(r for r in rows if r.startswith("conv1_1"))
    assert "64 x 384 x 384" in conv11 and "1,792" in conv11 and f"{64 * 27 * 384 * 384:,}" in conv11
    assert next(r for r in rows if r.startswith("pool5")).split()[1:4] == ["512", "x", "12"]
