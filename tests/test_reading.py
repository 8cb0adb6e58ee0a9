"""Image files are read within bounds, by one function for every reader (the local commands, Ray's actors, the
inside view): only regular files (a device or a FIFO is refused from its stat, never opened, so nothing blocks or
streams without end), only once the header names an image (a huge file that is not one is not read), and at most
the bytes an image within the pixel limit can need. And a run where some images do not read says how many, and the
first reasons, at its end; where none reads, it fails in a sentence."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import png, small_weights

from vggnet.data.images import BadImage, max_image_bytes, read_checked, read_image_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def odd_files(tmp_path):
    """A FIFO, a 300 MB sparse file that is not an image, and a small image with 300 MB after it."""
    os.mkfifo(tmp_path / "fifo.png")
    with open(tmp_path / "huge.png", "wb") as f:
        f.truncate(300 * 2**20)  # sparse: costs no disk
    with open(tmp_path / "padded.png", "wb") as f:
        f.write(png(8, 8))
        f.truncate(300 * 2**20)
    (tmp_path / "ok.png").write_bytes(png(12, 10))
    return tmp_path


def test_only_regular_files_and_only_what_an_image_can_need(odd_files):
    for path, reason in (("/dev/zero", "not a regular file (a character device)"),
                         (odd_files / "fifo.png", "not a regular file (a FIFO)"),
                         (odd_files, "not a regular file (a folder)"),
                         (odd_files / "huge.png", "not an image"),
                         (f"file://{odd_files / 'fifo.png'}", "not a regular file (a FIFO)")):  # fmt: skip
        with pytest.raises(BadImage, match=reason.replace("(", r"\(").replace(")", r"\)")):
            read_image_bytes(path)
    # within the pixel limit an 8 x 8 PNG cannot need 300 MB: refused from its size, before reading
    with pytest.raises(BadImage, match=r"314,572,800 bytes is more than an image of at most 1,000 pixels can need"):
        read_image_bytes(odd_files / "padded.png", max_pixels=1000)
    assert max_image_bytes(1000) < 300 * 2**20 < max_image_bytes()  # the default limit reads it, as a local user's
    with pytest.raises(FileNotFoundError):
        read_image_bytes(odd_files / "missing.png")
    data, fmt = read_checked(odd_files / "ok.png")
    assert data == (odd_files / "ok.png").read_bytes() and fmt == "PNG"
    assert read_image_bytes(f"file://{odd_files / 'ok.png'}") == data


def test_reading_odd_files_is_bounded_in_memory_and_time(odd_files):
    """In a process of its own: what reading each costs in resident memory and time."""
    code = (
        "import resource, sys, time\n"
        "from vggnet.data.images import BadImage, read_image_bytes\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.monotonic()\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        read_image_bytes(path)\n"
        "    except BadImage as err:\n"
        "        print(err)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024, time.monotonic() - start)\n"
    )
    paths = ["/dev/zero", str(odd_files / "fifo.png"), str(odd_files / "huge.png")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    *reasons, last = proc.stdout.splitlines()
    assert len(reasons) == 3, proc.stdout
    grown_mb, seconds = int(last.split()[0]), float(last.split()[1])
    assert grown_mb < 50 and seconds < 10, last


def run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "vggnet", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err, time.monotonic() - started


def test_local_commands_skip_what_does_not_read_and_say_so_at_the_end(odd_files):
    small_weights(odd_files / "w.safetensors")
    images = odd_files / "images" / "cat"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(png(40, 36, 1))
    os.link(odd_files / "huge.png", images / "huge.png")  # the same sparse file, no disk
    os.mkfifo(images / "fifo.png")  # not a file: not listed at all
    args = ["features", "--weights", "w.safetensors", "--data", "images", "--out", "f.safetensors"]
    code, out, err, seconds = run(args, odd_files)
    assert code == 0, err
    assert "1 of 2 images did not read (first: images/cat/huge.png: not an image" in err and seconds < 120
    # predict: an unreadable image of many is skipped and counted; where none reads, an error in a sentence
    code, out, err, _ = run(["predict", "--weights", "w.safetensors", "ok.png", "/dev/zero", "fifo.png", "--top", "1"],
                            odd_files)  # fmt: skip
    assert code == 0 and out.startswith("ok.png: ") and len(out.splitlines()) == 1, err
    assert "2 of 3 images did not read (first: cannot read image /dev/zero: not a regular file" in err
    code, out, err, _ = run(["predict", "--weights", "w.safetensors", "/dev/zero", "huge.png"], odd_files)
    assert code == 2 and not out
    assert err.strip().splitlines()[-1].startswith("vggnet predict: error: none of the 2 images read (first: ")
