"""Past one machine on Ray, tested on a real cluster of two nodes on this machine (``ray.cluster_utils.Cluster``: a
head and one more node), on loopback only: every Ray process gets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray would
otherwise bind and connect on the machine's other address) and RAY_USAGE_STATS_ENABLED=0 (no report to the outside),
and no connection of the test may leave 127.0.0.0/8 while it runs. The commands run as subprocesses and join the
cluster as a user's would. Where Ray cannot start here, the tests are skipped, saying why."""

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
PLAN = ["--dataset", "synthetic", "--width", "0.0625", "--epochs", "1", "--seeds", "2", "--scale-seeds", "0",
        "--nets", "A", "B", "--eval-limit", "24", "--val-split", "48", "--no-progress"]  # fmt: skip

pytestmark = pytest.mark.slow


def vggnet(args, env=None, timeout=600):
    environment = {**os.environ, **LOOPBACK, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vggnet", *args], env=environment, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or 127.0.0.0/8 written as IPv6 (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


class Watch:
    """Every remote address a connection of this test's processes (Ray's included) has, sampled while it runs."""

    def __init__(self) -> None:
        import psutil

        self.psutil, self.seen, self.stop = psutil, set(), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        me = self.psutil.Process()
        while not self.stop.is_set():
            pids = {me.pid, *(p.pid for p in me.children(recursive=True))}
            for c in self.psutil.net_connections(kind="inet"):
                if c.pid in pids and c.raddr:
                    self.seen.add(c.raddr.ip)
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        outside = {ip for ip in self.seen if not loopback(ip)}
        assert not outside, f"connections left loopback: {outside}"


@pytest.fixture(scope="module")
def cluster():
    assert all(os.environ.get(k) == v for k, v in LOOPBACK.items())  # conftest sets them before Ray is imported
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vggnet[ray]')")
    from ray.cluster_utils import Cluster

    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
        worker = c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"Ray cannot start a cluster here: {err}")
    assert c.address.startswith("127.0.0.1:"), c.address
    yield c, worker
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "r"
    proc = vggnet(["reproduce", *PLAN, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


def same_runs(a: Path, b: Path) -> None:
    """The two folders' runs hold the same weights and the same posteriors."""
    names = sorted(p.name for p in a.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in b.iterdir() if p.is_dir()) and len(names) == 4
    for name in names:
        for file in ("model.safetensors", "val.safetensors", "test.safetensors"):
            x, y = load_file(a / name / file), load_file(b / name / file)
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), (name, file)


def test_a_reproduction_on_two_nodes_equals_the_serial_one(cluster, serial, tmp_path):
    c, _ = cluster
    out = tmp_path / "r"
    with Watch():
        proc = vggnet(["reproduce", *PLAN, "--out", str(out), "--ray", c.address, "--run-cpus", "1"])
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 runs submitted" in proc.stdout
    nodes = proc.stdout.split("trained and validated: ", 1)[1].splitlines()[0]
    assert nodes.count(" on ") == 2, nodes  # both nodes ran runs
    same_runs(serial, out)
    found = [json.loads((d / "reproduce.json").read_text())["findings"] for d in (serial, out)]
    assert [(f["claim"], f["verdict"], f["effect"]) for f in found[0]] == [
        (f["claim"], f["verdict"], f["effect"]) for f in found[1]
    ]
    # stopped and restarted: only what is missing is submitted again
    for gone in ("B_256_seed1", "A_256_seed0/val.safetensors"):
        path = out / gone
        subprocess.run(["rm", "-r", str(path)], check=True)
    again = vggnet(["reproduce", *PLAN, "--out", str(out), "--ray", c.address])
    assert again.returncode == 0, again.stderr
    assert "2 of 4 runs submitted" in again.stdout  # A_256_seed0's validation, B_256_seed1 from A_256_seed1
    same_runs(serial, out)


def test_without_ray_or_a_cluster_it_is_a_sentence_and_nothing_starts(tmp_path):
    out = tmp_path / "r"
    code = "import sys; sys.modules['ray'] = None; from vggnet.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code, "reproduce", *PLAN, "--out", str(out), "--ray", "local"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "pip install 'vggnet[ray]'" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not out.exists()
    started = time.monotonic()
    proc = vggnet(["reproduce", *PLAN, "--out", str(out), "--ray", "127.0.0.1:9"], timeout=120)
    assert proc.returncode == 2 and "nothing answers there" in proc.stderr and time.monotonic() - started < 60
    assert not out.exists()
    other = tmp_path / "other"  # a folder of other settings is refused before Ray is looked for
    other.mkdir()
    (other / "reproduce_settings.json").write_text(json.dumps({"val_split": 1}))
    proc = subprocess.run([sys.executable, "-c", code, "reproduce", *PLAN, "--out", str(other), "--ray", "local"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "other settings" in proc.stderr and "pip install" not in proc.stderr


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A small model, and a folder of images in two class folders, one of them not an image."""
    from helpers import png, small_weights

    root = tmp_path_factory.mktemp("collection")
    small_weights(root / "w.safetensors")
    for i in range(3):
        for kind in ("cat", "dog"):
            (root / "images" / kind).mkdir(parents=True, exist_ok=True)
            (root / "images" / kind / f"{i}.png").write_bytes(png(40 + i, 36 + 2 * i, i + 10 * (kind == "dog")))
    (root / "images" / "dog" / "9.png").write_bytes(b"\x89PNG not really")
    return root


def test_features_of_a_collection_equal_the_local_command_row_for_row(cluster, collection):
    import pyarrow.parquet as pq

    from vggnet.inference.descriptors import load_features

    c, _ = cluster
    w, images = str(collection / "w.safetensors"), str(collection / "images")
    local = vggnet(["features", "--weights", w, "--data", images, "--out", str(collection / "local.safetensors")])
    assert local.returncode == 0, local.stderr
    expected = load_features(collection / "local.safetensors")
    with Watch():
        proc = vggnet(["features", "--weights", w, "--data", images, "--out", str(collection / "rows"), "--ray",
                       c.address, "--actors", "2"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(collection / "rows").to_pylist()
    assert [r["path"] for r in rows] == [*expected.files[:3], *expected.files[3:], str(Path(images) / "dog" / "9.png")]
    good, bad = rows[:-1], rows[-1]
    assert [r["class"] for r in good] == [expected.classes[i] for i in expected.labels.tolist()]
    got = torch.tensor([r["feature"] for r in good])
    torch.testing.assert_close(got.float(), expected.features, rtol=1e-5, atol=1e-6)
    assert bad["feature"] is None and "not an image" in bad["error"] and bad["class"] == "dog"
    # the same collection as a list of paths (five times over, in files of a few rows), and as Parquet: the same rows
    (collection / "list.txt").write_text("\n".join(r["path"] for r in rows * 5))
    pq.write_table(pq.read_table(collection / "rows").select(["path", "class"]), collection / "list.parquet")
    for listing, times, files in (("list.txt", 5, ["--rows-per-file", "3"]), ("list.parquet", 1, [])):
        out = collection / f"rows_{listing}"
        proc = vggnet(["features", "--weights", w, "--data", str(collection / listing), "--out", str(out), "--ray",
                       c.address, "--actors", "2", *files])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert (len(list(out.glob("*.parquet"))) > 1) == bool(files)  # several files read back in order
        again = pq.read_table(out).to_pylist()
        assert [r["path"] for r in again] == [r["path"] for r in rows * times]
        features = [r["feature"] for r in again if r["error"] is None]
        torch.testing.assert_close(torch.tensor(features), got.repeat(times, 1))


def test_predictions_of_a_collection_equal_the_local_command(cluster, collection):
    import pyarrow.parquet as pq

    c, _ = cluster
    w, images = str(collection / "w.safetensors"), str(collection / "images")
    proc = vggnet(["predict", "--weights", w, "--data", images, "--out", str(collection / "predictions"), "--ray",
                   c.address, "--top", "2"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(collection / "predictions").to_pylist()
    first = rows[0]
    local = vggnet(["predict", "--weights", w, "--top", "2", first["path"], "--json"])
    (top,) = [json.loads(line)["top"] for line in local.stdout.splitlines()]
    assert [t["class"] for t in top] == first["top_classes"]
    assert [t["probability"] for t in top] == pytest.approx(first["top_probabilities"], abs=1e-4)
    assert rows[-1]["error"] and rows[-1]["top_classes"] is None


def command_line(process) -> str:
    """A process's command line, or "" for one that ended (or became a zombie) while the children were listed."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
        return ""


def test_a_node_that_dies_mid_run_loses_nothing(cluster, serial, tmp_path):  # last: the cluster loses a node
    import psutil

    c, worker = cluster
    out = tmp_path / "r"
    environment = {**os.environ, **LOOPBACK, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "vggnet", "reproduce", *PLAN, "--out", str(out), "--ray", c.address]
    driver = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    raylet = psutil.Process(worker.all_processes["raylet"][0].process.pid)
    deadline, running = time.monotonic() + 180, []
    while time.monotonic() < deadline and not running:  # a run in progress on the second node
        running = [p for p in raylet.children(recursive=True) if "ray::run_task" in command_line(p)]
        time.sleep(0.1)
    assert running, "no run ever started on the second node"
    raylet.kill()  # the node dies: its raylet, by PID
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    same_runs(serial, out)
