"""The run folder as a database would keep it: atomic writes, a full disk, locks, sets of files replaced together."""

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vggnet
from vggnet.base.files import Staging, atomic_copy, atomic_write_text, folder_lock, save_safetensors
from vggnet.training.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def small_disk(path: Path, size: str = "2m"):
    """A tmpfs of ``size`` at ``path``: a disk that really fills up (root can mount one; elsewhere, skipped)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({done.stderr.decode().strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Take all the free space of ``folder``'s disk but ``leave`` bytes."""
    free = shutil.disk_usage(folder).free - leave
    with open(folder / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free, 0))


def test_files_take_the_users_umask_whatever_the_writer(tmp_path):
    old = os.umask(0o022)
    try:
        weights = vggnet.save_weights(vggnet.build("vgg11", width=1 / 16, fc_width=8), tmp_path / "m.safetensors")
        text = atomic_write_text(tmp_path / "a.txt", "x")
        checkpoint = save_checkpoint({"model": {}}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in (weights, text, checkpoint)} == {"0o644"}


def test_copying_a_file_again_over_its_own_link_leaves_no_temporary(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    for _ in range(2):  # the second copy finds the target already a link to the source
        atomic_copy(tmp_path / "a.json", tmp_path / "out" / "b.json")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.json"]
    (tmp_path / "a.json").write_text('{"new": 1}')  # a source rewritten in place (the link sees it)
    (tmp_path / "c.json").write_text("[]")
    atomic_copy(tmp_path / "c.json", tmp_path / "out" / "b.json")  # another file over the link: replaced
    assert (tmp_path / "out" / "b.json").read_text() == "[]" and (tmp_path / "a.json").read_text() == '{"new": 1}'


def test_a_full_disk_is_one_sentence_naming_the_file_and_loses_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        save_checkpoint({"model": {"w": torch.ones(10)}}, disk / "last.pt")
        atomic_copy(disk / "last.pt", disk / "best.pt")  # a hard link: costs no space
        fill(disk)
        with pytest.raises(OSError) as found:
            save_checkpoint({"model": {"w": torch.zeros(100_000)}}, disk / "last.pt")
        assert found.value.errno == errno.ENOSPC and found.value.filename == str(disk / "last.pt")
        with pytest.raises(OSError) as found:
            save_safetensors({"w": torch.zeros(100_000)}, disk / "model.safetensors")
        assert found.value.filename == str(disk / "model.safetensors")
        for name in ("last.pt", "best.pt"):  # the earlier files are whole
            assert torch.equal(load_checkpoint(disk / name)["model"]["w"], torch.ones(10))
        assert sorted(p.name for p in disk.iterdir()) == ["best.pt", "filler", "last.pt"]  # no temporaries


@pytest.mark.slow
def test_training_into_a_disk_that_fills_up_ends_in_a_sentence_with_every_file_whole(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "vggnet", "train", "--dataset", "synthetic", "--arch", "vgg11_bn", "--width",
            "0.125", "--pool-size", "1", "--fc-width", "32", "--batch-size", "64", "--amp", "off", "--no-progress",
            "--no-tensorboard"]  # fmt: skip
    probe = tmp_path / "probe"
    subprocess.run([*argv, "--epochs", "1", "--out", str(probe)], env=env, capture_output=True, timeout=300, check=True)
    size = (probe / "last.pt").stat().st_size
    with small_disk(tmp_path / "disk", "16m") as disk:
        fill(disk, leave=int(1.5 * size) + 200_000)  # room for the first checkpoint (best.pt is a link), not a second
        done = subprocess.run([*argv, "--epochs", "3", "--out", str(disk / "run")], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "unexpected error" not in done.stderr
        (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
        assert line == f"vggnet train: error: No space left on device: {disk / 'run' / 'last.pt'}"
        assert not [p for p in (disk / "run").iterdir() if p.name.endswith(".tmp")]
        for name in ("last.pt", "best.pt"):  # what was written before is whole and loads
            assert load_checkpoint(disk / "run" / name)["epoch"] == 1


def test_a_folder_in_use_is_refused_with_the_holders_process_id(tmp_path):
    busy = rf"folder {tmp_path / 'run'} is in use .* \(process {os.getpid()}\)"
    with folder_lock(tmp_path / "run"), pytest.raises(ValueError, match=busy), folder_lock(tmp_path / "run"):
        pass
    with folder_lock(tmp_path / "run"):  # released: the next command gets it
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    code = (
        "import sys, time; from vggnet.base.files import folder_lock\nwith folder_lock(sys.argv[1]):\n time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # importing torch takes seconds, and far more on a loaded machine
        while time.monotonic() < deadline and holder.poll() is None:
            if (tmp_path / "run" / ".vggnet.lock").exists() and (tmp_path / "run" / ".vggnet.lock").read_text():
                break
            time.sleep(0.1)
        with pytest.raises(ValueError, match=f"process {holder.pid}"), folder_lock(tmp_path / "run"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path / "run"):  # the kernel released the dead holder's lock
        pass


def test_a_staged_set_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    for name in ("a", "b", "c"):
        (out / name).write_text("old")
    with pytest.raises(RuntimeError), Staging(out) as stage:
        stage.path("a").write_text("new")
        raise RuntimeError("the second file failed")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a": "old", "b": "old", "c": "old"}
    (out / ".staging-leftover").mkdir()  # as a killed export leaves it
    with Staging(out) as stage:
        for name in ("a", "b"):
            stage.path(name).write_text("new")
        assert stage.commit(["a", "b"], replaces=["a", "b", "c"]) == ["c"]
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a": "new", "b": "new"}


def test_writing_under_a_file_names_the_file(tmp_path):
    (tmp_path / "a").write_text("a file")
    with pytest.raises(ValueError, match=rf"cannot write .*a/b.txt: {tmp_path / 'a'} is a file, not a folder"):
        atomic_write_text(tmp_path / "a" / "b.txt", "x")
