"""The conventions every torchvision, timm or Keras user expects of a command: --version, short argparse errors with
the nearest flag or command, predict over folders and lists, convert that writes beside its input and never
replaces a file unasked, and a download failure that names the way the caller gives a file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_folder

import vggnet
from vggnet.cli import main
from vggnet.formats import FORMATS, weights_formats
from vggnet.version import __version__

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def vggnet_run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vggnet", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own exits
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_version_from_both_entry_points(tmp_path):
    proc = vggnet_run(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"vggnet {__version__} (PyTorch "), proc.stderr
    script = Path(sys.executable).with_name("vggnet")
    if script.exists():  # the console script of an installed vggnet
        found = subprocess.run([str(script), "--version"], env=ENV, capture_output=True, text=True, timeout=120)
        assert found.stdout == proc.stdout


@pytest.mark.slow
def test_an_argparse_error_is_one_short_usage_line_and_the_sentence(tmp_path):
    proc = vggnet_run(["train", "--lr", "-1"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "usage: vggnet train [options] (see vggnet train --help)",
        "vggnet train: error: argument --lr: must be positive, got -1",
    ]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--epcohs", "5"], "vggnet train: error: unrecognized arguments: --epcohs; did you mean --epochs?"),
        (["trian"], "vggnet: error: argument COMMAND: invalid choice: 'trian' (choose from"),
        (["trian"], "did you mean train?"),
        (["evl", "--weights", "x"], "did you mean eval?"),
        (["eval", "--protocols", "centre"], "invalid choice: 'centre' (choose from 'center',"),
        (["eval", "--protocols", "centre"], "did you mean center?"),
        (["predict", "--wieghts", "w.safetensors", "a.png"], "did you mean --weights?"),
        (["features", "--no-flpi"], "did you mean --no-flip?"),
        (["convert", "x.pth", "--froce"], "did you mean --force?"),
        ([], "vggnet: error: give a command: info, convert, train, eval"),
    ],
)
def test_a_misspelt_flag_or_command_gets_the_nearest_one(capsys, argv, said):
    code, out, err = run_main(argv, capsys)
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 2, err
    assert lines[0].startswith("usage: vggnet") and lines[0].endswith("--help)") and said in lines[1], err


def test_nonsense_gets_no_suggestion(capsys):
    code, _, err = run_main(["export", "--frobnicate", "x"], capsys)
    assert code == 2 and err.splitlines()[1] == "vggnet export: error: unrecognized arguments: --frobnicate"


# -- predict over folders and lists -----------------------------------------------------------------------------------
@pytest.fixture
def photos(tmp_path):
    model = vggnet.build("vgg11_bn", width=1 / 16, num_classes=2, pool_size=1, fc_width=16).eval()
    meta = {"classes": '["cat", "dog"]', "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "32"}
    vggnet.save_weights(model, tmp_path / "w.safetensors", metadata={**meta, "scale": "32"})
    make_folder(tmp_path / "photos" / "trip", bad=False)  # photos/trip/{cat,dog}/0..5.png
    (tmp_path / "photos" / "notes.txt").write_text("not an image\n")
    (tmp_path / "photos" / ".hidden.png").write_bytes(b"left out silently")
    return tmp_path


def test_predict_takes_a_folder_recursively_in_sorted_order_saying_what_it_left_out(photos, capsys, monkeypatch):
    monkeypatch.chdir(photos)
    code, out, err = run_main(["predict", "--weights", "w.safetensors", "photos", "--top", "2"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    expected = [f"photos/trip/{c}/{i}.png" for c in ("cat", "dog") for i in range(6)]
    assert [line.split(": ")[0] for line in lines] == expected  # one line per image
    assert all(line.count("%") == 2 and ("cat " in line and "dog " in line) for line in lines)
    assert "1 file that is not an image left out: photos/notes.txt (not an image: .txt)" in err
    assert ".hidden" not in out + err


def test_predict_takes_lists_relative_to_the_shell_or_the_list_and_writes_json_lines(photos, capsys, monkeypatch):
    (photos / "photos" / "some.txt").write_text("# two of them\ntrip/cat/0.png\n\ntrip/dog/5.png\n")  # beside the list
    (photos / "here.lst").write_text("photos/trip/dog/1.png\n")  # from the current folder
    elsewhere = photos / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a user in another folder, with relative paths
    args = ["predict", "--weights", "../w.safetensors", "../photos/some.txt", "--json", "--top", "1"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == ["../photos/trip/cat/0.png", "../photos/trip/dog/5.png"]
    assert all(len(r["top"]) == 1 and 0 < r["top"][0]["probability"] <= 1 for r in rows)
    monkeypatch.chdir(photos)
    code, out, err = run_main(["predict", "--weights", "w.safetensors", "here.lst", "photos/trip/cat/1.png"], capsys)
    assert code == 0 and [line.split(": ")[0] for line in out.splitlines()] == [
        "photos/trip/dog/1.png",
        "photos/trip/cat/1.png",
    ], err


def test_predict_reads_a_collection_locally_as_ray_does(photos, capsys, monkeypatch):
    monkeypatch.chdir(photos)
    code, out, err = run_main(["predict", "--weights", "w.safetensors", "--data", "photos/trip", "--top", "1"], capsys)
    assert code == 0, err
    assert [line.split(": ")[0] for line in out.splitlines()] == [
        f"photos/trip/{c}/{i}.png" for c in ("cat", "dog") for i in range(6)
    ]  # the rows --ray would send (absolute), shown as the positional images are: from the current folder
    code, _, err = run_main(["predict", "--weights", "w.safetensors", "--data", "nowhere"], capsys)
    assert code == 2 and "nowhere" in err
    code, _, err = run_main(["predict", "--weights", "w.safetensors", "photos", "--heatmap", "h.png"], capsys)
    assert code == 2 and "--heatmap draws one image; photos holds 12" in err


# -- convert --------------------------------------------------------------------------------------------------------
def test_convert_writes_beside_its_input_and_never_replaces_a_file_unasked(tmp_path, capsys, monkeypatch):
    (tmp_path / "models").mkdir()
    model = vggnet.build("vgg11", width=1 / 16, fc_width=16, num_classes=3)
    vggnet.save_weights(model, tmp_path / "models" / "tiny.safetensors")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    keep = tmp_path / "here" / "model.safetensors"  # where convert used to write, whatever was there
    keep.write_bytes(b"a file that was here before")
    args = ["convert", "../models/tiny.safetensors"]
    code, out, err = run_main(args, capsys)
    written = tmp_path / "models" / "tiny.vggnet.safetensors"  # beside it, never over the file it reads
    assert code == 0 and f"wrote {Path('../models/tiny.vggnet.safetensors')}" in out, err
    assert written.is_file() and keep.read_bytes() == b"a file that was here before"
    before = written.read_bytes()
    code, out, err = run_main(args, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "tiny.vggnet.safetensors exists; vggnet convert replaces a file only with --force" in err
    assert written.read_bytes() == before
    code, _, err = run_main([*args, "--out", "model.safetensors"], capsys)
    assert code == 2 and "model.safetensors exists" in err and keep.read_bytes() == b"a file that was here before"
    code, out, err = run_main([*args, "--out", "model.safetensors", "--force"], capsys)
    assert code == 0 and keep.read_bytes() != b"a file that was here before", err
    torch.testing.assert_close(vggnet.load_model(keep).model.features[0].weight, model.features[0].weight)


def test_a_converted_file_is_named_after_its_source():
    from vggnet.commands.convert import ConvertSettings, target

    assert target(ConvertSettings("/m/VGG_ILSVRC_16_layers.caffemodel")) == Path("/m/VGG_ILSVRC_16_layers.safetensors")
    assert target(ConvertSettings("a/vgg16_weights.weights.h5")) == Path("a/vgg16_weights.weights.safetensors")
    assert target(ConvertSettings("https://x.org/w/vgg16-397923af.pth")) == Path("vgg16-397923af.safetensors")
    assert target(ConvertSettings("torchvision", arch="vgg16")) == Path("vgg16.safetensors")
    with pytest.raises(ValueError, match="--out must end in .safetensors"):
        target(ConvertSettings("a.pth", out="a.pt"))


def test_convert_help_lists_every_format_it_reads(capsys):
    code, out, _ = run_main(["convert", "--help"], capsys)
    assert code == 0
    listed = out.split("Formats it reads", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(listed) == len(weights_formats())
    for line, fmt in zip(listed, weights_formats()):
        assert line.split()[0].rstrip(",") == fmt.suffixes[0] and fmt.description in line
    suffixes = {s for f in FORMATS for s in f.suffixes}
    assert {".caffemodel", ".h5", ".keras", ".onnx", ".mat", ".pth", ".safetensors"} <= suffixes


# -- what main.sh installs ------------------------------------------------------------------------------------------
def test_the_extra_a_command_needs_is_named_from_its_words():
    from vggnet.base.extras import extras_for

    assert extras_for(["train", "--recipe", "fashion_mnist"]) == [] and extras_for([]) == []
    assert extras_for(["serve", "--weights", "w.safetensors"]) == ["serve"]
    assert extras_for(["inside", "--weights", "w.safetensors", "--engine", "openvino"]) == ["openvino", "serve"]
    assert extras_for(["features", "--ray", "local", "--data", "x", "--out", "y"]) == ["ray"]
    assert extras_for(["predict", "--weights", "exp/model.onnx", "a.png"]) == ["export"]
    assert extras_for(["export", "--weights", "w.safetensors", "--triton", "repo"]) == ["export", "triton"]
    assert extras_for(["eval", "--weights", "m.xml", "--engine=onnxruntime"]) == ["export", "openvino"]
    assert extras_for(["bench", "--only", "inference", "engines"]) == ["export", "openvino"]
    extras = _pyproject_extras()
    assert all(set(extras_for([word, *rest])) <= set(extras) for word, *rest in (["serve"], ["x", "--ray", "auto"]))


def _pyproject_extras() -> list[str]:
    import tomllib

    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def test_main_sh_installs_the_base_package_and_the_extra_its_command_needs():
    main_sh, setup, test_sh = (ROOT / "scripts" / name for name in ("main.sh", "setup.sh", "test.sh"))
    for script in (main_sh, setup, test_sh):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    text = main_sh.read_text()
    assert 'VGGNET_EXTRAS="${VGGNET_EXTRAS-}"' in text and "extras_for" in text  # none by default, then the command's
    assert 'VGGNET_EXTRAS="${VGGNET_EXTRAS-test}"' in test_sh.read_text()


@pytest.mark.slow
def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """`vggnet info vgg16 | head -1`: the reader closing the pipe is no error to print (exit 141, as for a command
    killed by SIGPIPE), and nothing is said at exit either."""
    command = [sys.executable, "-m", "vggnet", "info", "vgg16", "--size", "384"]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before vggnet has imported torch: its first write finds no reader
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
