"""Ray beside a cluster already running, as a user meets it: another head started by ``ray start`` in a folder of its
own, ``RAY_ADDRESS`` pointing to it, and the commands run from yet another folder with relative paths. ``--ray
local`` starts a cluster of its own and leaves that one alone; ``--ray auto`` joins it; either way every path is
made absolute where the user typed it, the rows land where the user's shell says, unreadable entries (a device, a
FIFO, a huge file that is not an image) are rows with their reasons, read within bounds, and a job where nothing
read is an error. Ray's own log stays off the terminal; the job's own lines are on it. Loopback only (see
test_cluster.py); one cluster for the module, stopped by its processes' ids at the end."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
RAY_NOISE = ("Running Dataset", "Total Progress", "deprecated", "core_worker", "Started a local Ray instance",
             "INFO", "WARNING", "Autoscaler", "(raylet)", "Token authentication")  # fmt: skip

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes(mark: str) -> None:
    """The processes of one cluster: those whose command line names its own folder (never `ray stop`, which stops
    every cluster of the machine)."""
    import psutil

    mine = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.pid != os.getpid() and any(mark in a for a in p.info["cmdline"] or [])
    ]
    for p in mine:
        p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=5)
    for p in alive:
        p.kill()


@pytest.fixture(scope="module")
def other():
    """A cluster started by `ray start --head` in a folder of its own: its address, its session's logs and that
    folder."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'vggnet[ray]')")
    root = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    (root / "cwd").mkdir()
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | LOOPBACK
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address", "127.0.0.1",
               "--port", address.split(":")[1], "--num-cpus", "2", "--include-dashboard", "false",
               "--temp-dir", str(root / "ray")]  # fmt: skip
    try:
        started = subprocess.run(command, cwd=root / "cwd", env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        started = None
    if started is None or started.returncode != 0:
        stop_processes(str(root))
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"ray start cannot start a head here: {started.stderr[-300:] if started else 'timed out'}")
    yield address, root / "ray" / "session_latest" / "logs", root / "cwd"
    stop_processes(str(root))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folders: ``data/`` (weights, images in two class folders, one not an image, and entries no reader
    may open: a FIFO, a 300 MB sparse file that is not an image) and ``work/``, where the commands run."""
    from helpers import png, small_weights

    root = tmp_path_factory.mktemp("user")
    small_weights(root / "data" / "w.safetensors")
    for i in range(2):
        for kind in ("cat", "dog"):
            (root / "data" / "images" / kind).mkdir(parents=True, exist_ok=True)
            (root / "data" / "images" / kind / f"{i}.png").write_bytes(png(36 + i, 34, i + 10 * (kind == "dog")))
    (root / "data" / "images" / "dog" / "9.png").write_bytes(b"\x89PNG not really")
    os.mkfifo(root / "data" / "fifo.png")
    with open(root / "data" / "huge.png", "wb") as f:
        f.truncate(300 * 2**20)  # sparse: costs no disk
    (root / "work").mkdir()
    return root


def vggnet(args, cwd, address=None, timeout=300):
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "RAY_ADDRESS": address}
    return subprocess.run([sys.executable, "-m", "vggnet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in env.items() if v is not None})  # fmt: skip


def drivers(logs: Path) -> list[str]:
    """The jobs that joined a cluster: each driver's core worker leaves its log in the session's logs."""
    return sorted(p.name for p in logs.glob("python-core-driver-*"))


def clean(stderr: str) -> None:
    noise = [line for line in stderr.splitlines() if any(word in line for word in RAY_NOISE)]
    assert not noise, noise


def test_local_is_a_cluster_of_its_own_and_paths_are_the_users(other, user):
    import pyarrow.parquet as pq

    address, logs, its_folder = other
    before = drivers(logs)
    work = user / "work"
    proc = vggnet(["features", "--weights", "../data/w.safetensors", "--data", "../data/images", "--out", "rows",
                   "--ray", "local", "--actors", "1"], work, address)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert drivers(logs) == before  # the cluster RAY_ADDRESS names saw no job
    rows = pq.read_table(work / "rows").to_pylist()  # where the user's shell said
    assert len(rows) == 5 and all(Path(r["path"]).is_absolute() for r in rows)
    assert [r["error"] is None for r in rows] == [True] * 4 + [False]
    assert "not an image" in rows[-1]["error"] and rows[-1]["class"] == "dog"
    assert f"wrote 5 rows (features) to {work / 'rows'}" in proc.stdout
    assert "1 of 5 images did not read (first: " in proc.stderr and "9.png: BadImage: not an image" in proc.stderr
    clean(proc.stderr)
    assert not list(its_folder.iterdir())  # nothing landed in the other cluster's folder


def test_auto_joins_it_and_unreadable_entries_are_rows_read_within_bounds(other, user):
    import pyarrow as pa
    import pyarrow.parquet as pq

    address, logs, _ = other
    before, work = drivers(logs), user / "work"
    entries = ["../data/images/cat/0.png", "/dev/zero", "../data/fifo.png", "../data/huge.png", "no/such.png",
               "../data/images/dog/1.png"]  # fmt: skip
    pq.write_table(pa.table({"path": entries}), work / "list.parquet")
    proc = vggnet(["predict", "--weights", "../data/w.safetensors", "--data", "list.parquet", "--out", "predictions",
                   "--ray", "auto", "--actors", "1", "--top", "2"], work, address, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(drivers(logs)) == len(before) + 1  # it joined the running cluster
    rows = pq.read_table(work / "predictions").to_pylist()
    assert [r["path"] for r in rows] == [os.path.abspath(work / e) for e in entries]
    assert rows[0]["error"] is None and len(rows[0]["top_classes"]) == 2 and rows[-1]["error"] is None
    reasons = [r["error"] for r in rows[1:-1]]
    assert "not a regular file (a character device)" in reasons[0] and "not a regular file (a FIFO)" in reasons[1]
    assert "not an image" in reasons[2] and reasons[3].startswith("FileNotFoundError")
    assert "4 of 6 images did not read (first: /dev/zero: BadImage: not a regular file" in proc.stderr
    clean(proc.stderr)
    # a list where nothing reads: an error in a sentence, and the earlier rows stay as they were
    (work / "bad.txt").write_text("/dev/zero\n../data/fifo.png\n../data/huge.png\n")
    kept = sorted(p.name for p in (work / "predictions").iterdir())
    proc = vggnet(["predict", "--weights", "../data/w.safetensors", "--data", "bad.txt", "--out", "predictions",
                   "--ray", "auto", "--actors", "1"], work, address, timeout=240)  # fmt: skip
    assert proc.returncode == 2 and "none of the 3 images read (first: /dev/zero" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("vggnet predict: error: nothing written to predictions")
    assert sorted(p.name for p in (work / "predictions").iterdir()) == kept
