"""``vggnet stylize`` as a user meets it: in a subprocess from another folder with relative paths, its picture and
the pictures at intervals written, a bar on a terminal and none in a log, the normalised network made, saved and
used, and bad input (missing files, files that are not images, bad numbers and names) one sentence, exit 2."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import png, tiny

import vggnet
from vggnet.cli import main
from vggnet.losses import mean_activations
from vggnet.losses.stylize import read_picture

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A folder with a tiny VGG-19 saved as a vggnet file, a content and a style image, and a folder of images."""
    w = tmp_path_factory.mktemp("stylize")
    torch.manual_seed(7)
    vggnet.save_weights(tiny("vgg19", fc_width=16), w / "vgg19.safetensors")
    (w / "content.png").write_bytes(png(48, 36, seed=1))
    (w / "style.jpg").write_bytes(png(64, 64, seed=2))
    (w / "notes.png").write_text("not an image")
    (w / "folder").mkdir()
    (w / "folder.png").mkdir()
    for i in range(3):
        (w / "folder" / f"{i}.png").write_bytes(png(40, 40, seed=10 + i))
    return w


def vggnet_cli(args: list[str], cwd: Path, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "vggnet", "stylize", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=300,
    )


def test_the_picture_and_its_intervals_are_written_with_no_bar_in_a_log(ws):
    args = ["content.png", "style.jpg", "--weights", "vgg19.safetensors", "--size", "40", "--steps", "4"]
    done = vggnet_cli([*args, "--save-every", "2", "--out", "out/picture.png"], ws)
    assert done.returncode == 0, done.stderr
    out = ws / "out"
    assert sorted(p.name for p in out.iterdir()) == ["picture.png", "picture_0002.png", "picture_0004.png"]
    picture = read_picture(out / "picture.png")
    assert picture.shape == (1, 3, 30, 40)  # the content image's 48 x 36 at a longer side of 40
    assert re.search(r"wrote out/picture.png \(40x30, 4 lbfgs steps in [\d.]+ s; content [\d.e+-]+, style", done.stdout)
    assert "\r" not in done.stderr and "Traceback" not in done.stderr  # a log gets no carriage-return frames


def test_a_terminal_gets_a_bar(ws):
    leader, follower = pty.openpty()
    try:
        args = ["content.png", "style.jpg", "--weights", "vgg19.safetensors", "--size", "40", "--steps", "1000"]
        done = vggnet_cli([*args, "--optimizer", "adam", "--out", "bar.png"], ws, stderr=follower)  # > 0.5 s, a frame
        os.close(follower)
        follower = None
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert done.returncode == 0, shown
    text = shown.decode(errors="replace")
    assert re.search(r"\rstylize: +\d+%\|.* [1-9]\d*/1000 .*loss \d", text), text  # frames redrawn in place
    assert (ws / "bar.png").is_file()


def test_the_normalised_network_is_made_saved_and_used(ws):
    common = ["--weights", "vgg19.safetensors", "--size", "40"]
    made = vggnet_cli([*common, "--normalize-network", "folder", "--save-network", "net/normal.safetensors"], ws)
    assert made.returncode == 0, made.stderr
    assert "normalised on 3 images under folder; wrote net/normal.safetensors" in made.stdout
    loaded = vggnet.load_model(ws / "net" / "normal.safetensors")
    images = [read_picture(p, 40) for p in sorted((ws / "folder").iterdir())]
    for mean in mean_activations(loaded.model, images, loaded.model.normalization, "avg").values():
        active = mean > 0
        torch.testing.assert_close(mean[active], torch.ones_like(mean[active]), rtol=1e-4, atol=0)
    used = vggnet_cli(["content.png", "style.jpg", *common, "--weights", "net/normal.safetensors", "--steps", "2"], ws)
    assert used.returncode == 0 and (ws / "stylized.png").is_file(), used.stderr


def test_missing_and_unreadable_images_are_one_sentence(ws):
    for args, message in (
        (["missing.png", "style.jpg"], "no such image: missing.png"),
        (["content.png", "notes.png"], "cannot read image notes.png"),
    ):
        done = vggnet_cli([*args, "--weights", "vgg19.safetensors", "--size", "40", "--out", "never.png"], ws)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (ws / "never.png").exists()


# each case: the arguments after "vggnet stylize --weights W --size 40 --steps 1" ({i}: the two images), "~", and
# the message it must give
BAD = """
{w}/content.png ~ give a style image after .*content.png
 ~ give the two images: vggnet stylize CONTENT STYLE
{i} --steps 0 ~ argument --steps: must be at least 1, got 0
{i} --style-weight -1 ~ argument --style-weight: must not be negative, got -1
{i} --tv-weight nan ~ argument --tv-weight: must be a finite number, got nan
{i} --lr 0 ~ argument --lr: must be positive, got 0
{i} --size ten ~ argument --size: invalid int value: 'ten'
{i} --optimizer sgd ~ argument --optimizer: invalid choice: 'sgd'
{i} --content-layers relu4_2:x ~ --content-layers relu4_2:x: the weight after ':' must be a number
{i} --style-layers relu1_1:-2 ~ --style-layers relu1_1:-2: give NAME or NAME:WEIGHT
{i} --content-layers relu9_9 ~ unknown layer 'relu9_9'
{i} --content-layers fc7 ~ fc7 is in the classifier head
{i} --out {w}/picture.txt ~ cannot write a picture as .*picture.txt: give a name ending in .png
{i} --out {w}/folder.png ~ --out .*folder.png is a folder; give the picture's file name
{i} --size 20 ~ the content image is 20x15: these taps need at least 16 px a side
{i} --save-network {w}/n.safetensors ~ --save-network writes the network --normalize-network FOLDER makes
--normalize-network {w}/folder ~ --normalize-network without images makes a network: give --save-network
--normalize-network {w}/folder --save-network {w}/n.pt ~ --save-network must end in .safetensors
{i} --normalize-network {w}/nowhere ~ image folder .*nowhere does not exist
{i} --weights {w}/notes.png ~ cannot read weights from .*notes.png
"""
CASES = [tuple(part.strip() for part in line.split(" ~ ")) for line in BAD.strip("\n").splitlines()]


@pytest.mark.parametrize(("extra", "message"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_bad_input_is_one_sentence_and_exit_2(ws, capsys, extra, message):
    extra = extra.replace("{i}", "{w}/content.png {w}/style.jpg").format(w=ws).split()
    argv = ["stylize", "--weights", str(ws / "vgg19.safetensors"), "--size", "40", "--steps", "1", *extra]
    argv += [] if "--out" in extra else ["--out", str(ws / "bad" / "picture.png")]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "unexpected error" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert re.search(message, err), err
    assert not (ws / "bad").exists()


def test_torchvisions_vgg19_is_the_default_through_the_hub_cache(ws, hub_dir, monkeypatch, capsys):
    import vggnet.base.download

    fetched = []

    def offline(src, dst, advice):
        fetched.append(src)
        raise OSError(101, "Network is unreachable", src)

    monkeypatch.setattr(vggnet.base.download, "fetch", offline)
    code = main(["stylize", str(ws / "content.png"), str(ws / "style.jpg"), "--out", str(ws / "tv" / "p.png")])
    err = capsys.readouterr().err
    assert code == 2 and fetched == [vggnet.network.weights.official_weights("vgg19").url], err
    assert len(err.strip().splitlines()) == 1 and not (ws / "tv").exists()
