"""Progress on the screen: a bar on a terminal, a plain line now and then in a log, nothing with --no-progress; heavy
work says what it will do and how long it will take. The commands are run as users run them: under a pseudo-terminal
and piped."""

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_folder

import vggnet
import vggnet.base.progress
from vggnet.base.progress import Progress, duration, showing, track

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "100"}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_plain_line_every_few_seconds_not_carriage_returns(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(vggnet.base.progress.time, "monotonic", clock)
    log = io.StringIO()  # not a TTY
    progress = Progress(100, desc="epoch 1/5", every=30.0, stream=log)
    for step in range(1, 101):
        clock.now += 1.0  # one step a second: a line at steps 30, 60, 90
        progress.update(step, f"loss {1 / step:.3f}")
    progress.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines == [
        "epoch 1/5: step 30/100 (30%), loss 0.033",
        "epoch 1/5: step 60/100 (60%), loss 0.017",
        "epoch 1/5: step 90/100 (90%), loss 0.011",
    ]


def test_a_terminal_gets_a_bar_and_nothing_shows_when_switched_off():
    screen = Terminal()
    progress = Progress(10, desc="epoch 2/5", stream=screen)
    progress.update(5, "loss 0.5")
    progress.close()
    assert "epoch 2/5" in screen.getvalue() and "\r" in screen.getvalue()
    for kept_quiet in (Progress(10, desc="off", stream=Terminal(), enabled=False), None):
        with showing(False):
            quiet = kept_quiet or Progress(10, desc="off", stream=Terminal())
            quiet.update(5)
            quiet.note("a note")
            quiet.close()
        assert quiet.stream.getvalue() == ""


def test_heavy_work_says_once_how_long_it_will_take_from_its_first_items(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(vggnet.base.progress.time, "monotonic", clock)
    log = io.StringIO()
    progress = Progress(1000, desc="eval", unit="image", stream=log, estimate=True, every=1e9)
    for _ in range(20):
        clock.now += 5.5 if progress.n == 0 else 0.5  # the first image warms up: it is left out of the rate
        progress.advance(1)
    said = log.getvalue().splitlines()
    assert said == ["eval: about 8 min 25 s for the 1,000 images here (timed on the first ones)"]  # 5.5 + 999 x 0.5
    light = io.StringIO()
    progress = Progress(10, desc="eval", unit="image", stream=light, estimate=True, every=1e9)
    for _ in range(10):
        clock.now += 0.1
        progress.advance(1)
    assert light.getvalue() == ""  # a second of work needs no estimate


def test_track_counts_each_batch_by_its_size_and_logs_the_rate_and_time_left(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(vggnet.base.progress.time, "monotonic", clock)
    log = io.StringIO()
    monkeypatch.setattr(vggnet.base.progress.sys, "stderr", log)
    with showing(True, every=10.0):
        for _ in track([[0] * 4] * 25, total=100, desc="features", size=len):
            clock.now += 2.0
    lines = log.getvalue().splitlines()
    assert lines[0] == "features: image 20/100 (20%), 2 images/s, about 40 s left", lines  # every 10 s, 5 batches
    assert len(lines) == 5 and lines[-1] == "features: image 100/100 (100%), 2 images/s"


def test_times_read_as_people_read_them():
    assert [duration(s) for s in (0.01, 4.25, 42, 190, 1500, 9000, 6 * 86400)] == [
        "under 0.1 s", "4.2 s", "42 s", "3 min 10 s", "25 min", "2.5 h", "6.0 days"]  # fmt: skip


# -- the commands, on a terminal and piped ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    w = tmp_path_factory.mktemp("progress")
    model = vggnet.build("vgg11_bn", width=1 / 16, num_classes=2, pool_size=1, fc_width=16).eval()
    meta = {"classes": '["cat", "dog"]', "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "32"}
    vggnet.save_weights(model, w / "w.safetensors", metadata={**meta, "scale": "32"})
    make_folder(w / "imgs", bad=False)
    return w


def on_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """``vggnet ARGS`` with stdout and stderr on a pseudo-terminal, as a user at a terminal runs it: its code and
    what the terminal received."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vggnet", *args], stdin=sub, stdout=sub, stderr=sub, cwd=cwd, env=ENV
    )
    os.close(sub)
    received, ends = b"", time.monotonic() + timeout
    while time.monotonic() < ends:
        if select.select([main], [], [], 0.5)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed: the command ended
                break
            if not chunk:
                break
            received += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    return proc.wait(timeout=30), received.decode(errors="replace")


def piped(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vggnet", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


EVAL = ["eval", "--weights", "w.safetensors", "--data", "imgs", "--scales", "32", "--protocols", "center", "dense"]


@pytest.mark.slow
def test_eval_shows_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_asked(files):
    code, screen = on_terminal(EVAL, files)
    assert code == 0, screen
    assert "eval: 1 model, centre crop, dense at Q = 32, on 12 images of imgs" in screen  # what it will do
    assert "\reval:  " in screen and "%|" in screen and "/12 [" in screen  # tqdm's bar, redrawn in place
    logged = piped([*EVAL, "--log-every", "0.001"], files)
    assert logged.returncode == 0, logged.stderr
    lines = [line for line in logged.stderr.splitlines() if line.startswith("eval: image ")]
    assert len(lines) >= 3 and "\r" not in logged.stderr and "%|" not in logged.stderr, logged.stderr
    assert "eval: image 12/12 (100%)" in logged.stderr
    quiet = piped([*EVAL, "--no-progress"], files)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "| w | " in quiet.stdout  # the table itself is still there


@pytest.mark.slow
def test_predict_over_a_folder_and_training_show_their_progress_on_a_terminal(files):
    code, screen = on_terminal(["predict", "--weights", "w.safetensors", "imgs"], files)
    assert code == 0 and "predict:" in screen and "%|" in screen, screen
    assert screen.count("imgs/") == 12  # a line per image, the bar cleared between them
    train = ["train", "--dataset", "synthetic", "--arch", '[4, "M", 8, "M"]', "--pool-size", "1", "--fc-width", "8",
             "--epochs", "1", "--batch-size", "64", "--amp", "off", "--no-tensorboard", "--out", "run"]  # fmt: skip
    code, screen = on_terminal(train, files)
    assert code == 0, screen
    assert "epoch 1/1" in screen and "%|" in screen and "validation" in screen, screen
    quiet = piped([*train[:-1], "run2", "--no-progress"], files)
    assert quiet.returncode == 0 and "%|" not in quiet.stderr and "validation" not in quiet.stderr, quiet.stderr


def test_training_says_what_an_epoch_takes_here_once_its_first_steps_are_timed(tmp_path, monkeypatch, capsys):
    from helpers import tiny_config

    from vggnet.training.loop import train

    monkeypatch.setattr(vggnet.base.progress, "HEAVY", 0.0)  # a test's epoch is seconds: say it all the same
    train(tiny_config(tmp_path / "run", progress=True, epochs=2, batch_size=32, max_steps=7))
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "per epoch here" in line]
    assert len(said) == 1, err
    assert re.fullmatch(r"about .+ per epoch here, .+ for the 2 epochs left \(timed on .+\)", said[0]), said
