"""vggnet serve as a user meets it: started by its command on a free port, spoken to over loopback by real clients
(urllib, requests, httpx, curl, tritonclient, a browser), careless and hostile ones too, stopped by SIGTERM. The
protocol and the error bodies are checked in-process (tests/test_serve_app.py); so are the batcher's rules."""

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from helpers import SERVED_CLASSES as CLASSES
from helpers import headless_chromium, png
from PIL import Image

from vggnet.serving.batcher import Batcher, Overloaded
from vggnet.web.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``vggnet serve`` in a subprocess, as a user starts it."""

    def __init__(self, weights: Path, *flags: str, wait_ready: bool = True) -> None:
        """Started, and back once it is ready (``wait_ready=False``: once it accepts connections, ready or not;
        ``self.health`` then holds the ready endpoint's statuses seen on the way)."""
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        argv = [sys.executable, "-m", "vggnet", "serve", "--weights", str(weights), "--port", str(self.port)]
        argv += ["--grpc-port", str(self.grpc_port), *flags]
        # files, not pipes: a pipe nobody reads fills up with the access log and stops the service mid-test
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(argv, env=env, stdout=self.out, stderr=self.err, text=True)
        self.health: list[tuple[int, int]] = []  # (live, ready) statuses
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vggnet serve exited: {self.read(self.err)}")
            try:
                live = httpx.get(self.url + "/v2/health/live", timeout=1).status_code
                self.health.append((live, httpx.get(self.url + "/v2/health/ready", timeout=1).status_code))
                if self.health[-1][1] == 200 or not wait_ready:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("vggnet serve did not become ready")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            live = httpx.get(self.url + "/v2/health/live", timeout=5).status_code
            self.health.append((live, httpx.get(self.url + "/v2/health/ready", timeout=5).status_code))
            if self.health[-1][1] == 200:
                return
            time.sleep(0.02)
        raise RuntimeError("vggnet serve did not become ready")

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        out, err = self.read(self.out), self.read(self.err)
        self.out.close()
        self.err.close()
        return self.proc.returncode, out, err

    @staticmethod
    def read(file) -> str:
        file.seek(0)
        return file.read()


@pytest.fixture(scope="module")
def server(weights):
    s = Server(weights, "--max-batch", "8", "--max-wait-ms", "100", "--max-body", "1000000")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local(weights):
    """The same model in this process, to say what the service must answer."""
    return Engine.load(str(weights))


@pytest.mark.slow
def test_the_protocol_endpoints_and_a_triton_client_round_trip(server, local):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("vggnet")
    meta = client.get_model_metadata("vggnet")
    assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    assert meta["outputs"][0]["shape"] == [-1, 3] and meta["parameters"]["classes"] == CLASSES
    assert (meta["parameters"]["scale"], meta["parameters"]["crop"]) == (40, 32)
    x = torch.randn(3, 3, 32, 32)
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.numpy())
    got = client.infer("vggnet", [tensor]).as_numpy("probabilities")  # binary tensors, tritonclient's default
    np.testing.assert_allclose(got, local.classify(x).numpy(), rtol=1e-4, atol=1e-6)
    images = [png(50, 40, 1), png(33, 70, 2)]
    encoded = triton.InferInput("image_bytes", [2], "BYTES")
    encoded.set_data_from_numpy(np.array(images, dtype=np.object_))
    wanted = [triton.InferRequestedOutput("probabilities", binary_data=False)]
    got = client.infer("vggnet", [encoded], outputs=wanted).as_numpy("probabilities")
    expected = local.classify(torch.stack([local.preprocess(b) for b in images]))
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6)
    top = client.infer("vggnet", [tensor], outputs=[triton.InferRequestedOutput("probabilities", class_count=2)])
    first = top.as_numpy("probabilities")[0, 0].decode().split(":")
    assert first[2] == CLASSES[int(first[1])] and int(first[1]) == int(local.classify(x)[0].argmax())


def multipart(image: bytes, boundary: str = "vggnet-boundary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip


def big_png(size: int = 3_000_000) -> bytes:
    """A PNG of about ``size`` bytes (noise does not compress)."""
    side = int((size / 3) ** 0.5) + 1
    return png(side, side, 77)


def answer_of_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_an_upload_over_max_body_gets_its_413_with_every_ordinary_client(server):
    """Clients send the whole body before they read the answer: the 413 must reach them, not a connection reset."""
    import requests

    image = big_png()
    body, kind = multipart(image), "multipart/form-data; boundary=vggnet-boundary"
    url = server.url + "/predict"
    answers = {"urllib": answer_of_urllib(url, body, {"Content-Type": kind})}
    r = requests.post(url, files={"file": ("x.png", image, "image/png")}, timeout=60)
    answers["requests"] = (r.status_code, r.json())
    r = httpx.post(url, files={"file": ("x.png", image, "image/png")}, timeout=60)
    answers["httpx"] = (r.status_code, r.json())

    def chunks():  # no Content-Length: the limit is found while reading
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    r = httpx.post(url, content=chunks(), headers={"Content-Type": kind}, timeout=60)
    answers["httpx, chunked"] = (r.status_code, r.json())
    curl = shutil.which("curl")
    if curl:
        upload = server.url + "/predict"
        for name, expect in (("curl", []), ("curl, no Expect", ["-H", "Expect:"])):
            done = subprocess.run([curl, "-s", "-S", "-F", "file=@-;filename=x.png", *expect, "-w", "\n%{http_code}",
                                   upload], input=image, capture_output=True, timeout=60)  # fmt: skip
            text, code = done.stdout.decode().rsplit("\n", 1)
            answers[name] = (int(code), json.loads(text))
    for client, (status, content) in answers.items():
        assert status == 413 and "more than the 1,000,000" in content["error"], (client, status, content)
    assert len(answers) >= 4
    assert httpx.post(url, content=png(40, 40, 9), timeout=30).status_code == 200  # and the service goes on


@pytest.mark.slow
def test_request_heads_are_bounded_and_answered_431(server):
    url = server.url + "/predict"
    image = png(40, 40, 9)
    long_header = {"X-Padding": "a" * 200_000}
    r = httpx.post(url, content=image, headers=long_header, timeout=30)
    assert r.status_code == 431 and "more than the 32,768 bytes allowed (--max-header)" in r.json()["error"]
    status, content = answer_of_urllib(url, image, long_header)
    assert status == 431 and "--max-header" in content["error"]
    many = {f"X-Field-{i}": "b" * 100 for i in range(1000)}  # 100 kB in many headers
    assert httpx.post(url, content=image, headers=many, timeout=30).status_code == 431
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:  # a request line of 100 kB
        raw.sendall(b"GET /v2/health/live?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431") and b"--max-header" in reply
    ordinary = {"X-Padding": "a" * 8_000, "Cookie": "c" * 4_000}  # what browsers and proxies send
    assert httpx.post(url, content=image, headers=ordinary, timeout=30).status_code == 200
    assert httpx.post(url, content=image, timeout=30).status_code == 200  # the service goes on


@pytest.mark.slow
def test_an_animated_gif_is_classified_by_its_first_frame(server, local):
    first, second = Image.new("RGB", (60, 40), (230, 20, 20)), Image.new("RGB", (60, 40), (20, 20, 230))
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    still = io.BytesIO()
    first.save(still, "PNG")
    status, content = answer_of_urllib(server.url + "/predict", buffer.getvalue(), {"Content-Type": "image/gif"})
    expected = local.classify(local.preprocess(still.getvalue())[None])[0]
    assert status == 200 and content["top"][0]["class"] == CLASSES[int(expected.argmax())]


@pytest.mark.slow
def test_overload_is_refused_with_503_and_the_service_recovers_at_once(weights):
    s = Server(weights, "--max-batch", "2", "--max-queue", "4", "--max-wait-ms", "300")
    try:
        rss_before = rss(s.proc.pid)
        image = png(40, 40, 11)

        async def burst():
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(*[client.post(s.url + "/predict", content=image) for _ in range(32)])

        answers = asyncio.run(burst())  # 4 x the queue bound, at once
        codes = sorted(a.status_code for a in answers)
        assert set(codes) == {200, 503} and codes.count(200) >= 4
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "overloaded" in refused.json()["error"]
        started = time.monotonic()
        assert httpx.post(s.url + "/predict", content=image, timeout=30).status_code == 200
        assert time.monotonic() - started < 1.0
        assert rss(s.proc.pid) - rss_before < 100 * 2**20  # memory flat: refused requests cost nothing
    finally:
        code, _, err = s.stop()
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"method", "path", "status", "ms"} <= set(lines[0]) and sum(x["status"] == 503 for x in lines) >= 1


def rss(pid: int) -> int:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight_then_exits_0(weights):
    s = Server(weights, "--max-wait-ms", "3000")
    image = png(40, 40, 12)
    # A slow upload: its request is on its way to the batcher, so the next request waits for it (up to 3 s) and
    # both are in flight when SIGTERM comes.
    slow = socket.create_connection(("127.0.0.1", s.port))
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(image)}\r\nConnection: close\r\n\r\n"
    slow.sendall(head.encode() + image[:20])
    result = {}

    def ask() -> None:
        result["answer"] = httpx.post(s.url + "/predict", content=image, timeout=30)

    def ask_grpc() -> None:  # over gRPC, in flight as well
        import tritonclient.grpc as triton

        tensor = triton.InferInput("image", [1, 3, 32, 32], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
        client = triton.InferenceServerClient(f"127.0.0.1:{s.grpc_port}")
        result["grpc"] = client.infer("vggnet", [tensor]).as_numpy("probabilities")

    threads = [threading.Thread(target=ask), threading.Thread(target=ask_grpc)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):  # no new requests once stopping
        httpx.get(s.url + "/v2/health/live", timeout=2)
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException):  # nor new gRPC calls
        triton.InferenceServerClient(f"127.0.0.1:{s.grpc_port}").is_server_live(client_timeout=2)
    assert all(t.is_alive() for t in threads)  # still waiting for the slow upload's company
    slow.sendall(image[20:])
    reply = b""
    while chunk := slow.recv(65536):
        reply += chunk
    slow.close()
    for thread in threads:
        thread.join(timeout=30)
    code, out, _ = s.stop()
    assert reply.startswith(b"HTTP/1.1 200") and result["answer"].status_code == 200
    assert result["grpc"].shape == (1, 3)
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == result["answer"].json()  # the same image, one pass
    assert code == 0 and "stopped: every request in flight was answered" in out


def test_port_0_announces_the_port_it_listens_on_and_a_busy_port_is_a_sentence(weights, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "vggnet", "serve", "--weights", str(weights), "--no-warmup"]
    out = tmp_path / "out.txt"
    with out.open("w") as log:
        proc = subprocess.Popen([*argv, "--port", "0"], env=env, stdout=log, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        while "serving" not in out.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        first = out.read_text().splitlines()[0]
        url = first.split(" on ", 1)[1].split("/;", 1)[0]
        assert not url.endswith(":0"), first
        assert httpx.get(url + "/v2/health/ready", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*argv, "--port", str(port)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr, done.stderr


def test_the_batcher_batches_routes_times_out_and_refuses():
    calls, gate = [], threading.Event()

    def run(x: torch.Tensor) -> torch.Tensor:
        gate.wait(10)
        calls.append(len(x))
        return x.flatten(1).sum(1, keepdim=True)

    async def scenario():
        b = Batcher(run, max_batch=4, max_wait=0.05, max_queue=6)
        await b.start()
        gate.set()
        items = [torch.full((1, 1, 2, 2), float(i)) for i in range(4)]
        got = await asyncio.gather(*[b.submit(x) for x in items])
        assert [float(g) for g in got] == [4.0 * i for i in range(4)] and calls == [4]  # one pass, own rows
        big = await b.submit(torch.ones(6, 1, 2, 2))
        assert big.shape == (6, 1) and sorted(calls[1:]) == [2, 4]  # split at max_batch
        gate.clear()  # the model is busy: requests queue up
        busy = asyncio.create_task(b.submit(torch.ones(4, 1, 2, 2)))
        await asyncio.sleep(0.2)
        queued = [asyncio.create_task(b.submit(torch.ones(3, 1, 2, 2))) for _ in range(2)]  # 6 images: the bound
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="6 images are queued"):
            await b.submit(torch.ones(1, 1, 2, 2))
        gate.set()
        assert [r.shape for r in await asyncio.gather(busy, *queued)] == [(4, 1), (3, 1), (3, 1)]
        gate.clear()
        slow = asyncio.create_task(b.submit(torch.ones(1, 1, 2, 2)))
        await asyncio.sleep(0.2)  # that one is on the model now; the next waits behind it and gives up
        with pytest.raises(TimeoutError, match="no answer within 0.05 s"):
            await b.submit(torch.ones(1, 1, 2, 2), timeout=0.05)
        gate.set()
        await slow
        await b.stop()

    asyncio.run(scenario())


def test_a_batch_waits_only_for_requests_on_their_way_and_at_most_max_wait():
    calls = []

    def run(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.flatten(1).sum(1, keepdim=True)

    async def scenario():
        b = Batcher(run, max_batch=8, max_wait=5.0, max_queue=16)
        await b.start()
        one = torch.ones(1, 1, 2, 2)
        started = time.perf_counter()
        await b.submit(one)  # alone: answered at once, not after max_wait
        assert time.perf_counter() - started < 1.0 and calls == [1]
        with b.expecting():  # a second request is being decoded: the first waits for it
            first = asyncio.create_task(b.submit(one))
            await asyncio.sleep(0.2)
            assert calls == [1] and not first.done()
        second = await b.submit(2 * one)
        assert calls == [1, 2] and float(await first) == 4.0 and float(second) == 8.0  # one pass, own rows
        b.max_wait = 0.1
        with b.expecting():  # one that never arrives delays a batch by max_wait at most
            started = time.perf_counter()
            await b.submit(one)
            assert 0.1 <= time.perf_counter() - started < 1.0 and calls == [1, 2, 1]
        await b.stop()

    asyncio.run(scenario())


@pytest.mark.slow
def test_the_triton_repository_and_the_service_have_one_interface(weights, server, tmp_path):
    """One client, written from a model configuration, works against both: the repository's config.pbtxt (run by
    onnxruntime as Triton's backend would run it) and the service's /config (over HTTP and gRPC)."""
    import onnxruntime as ort
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    from vggnet.cli import main
    from vggnet.export.triton import check_triton_config

    argv = ["export", "--weights", str(weights), "--out", str(tmp_path / "out"), "--format", "onnx", "--triton",
            str(tmp_path / "repo"), "--name", "vggnet", "--max-batch", "8"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "repo" / "vggnet"
    text = (folder / "config.pbtxt").read_text()
    check_triton_config(text)
    with pytest.raises(ValueError, match="does not parse as Triton's ModelConfig"):
        check_triton_config(text.replace("TYPE_FP32", "TYPE_FP33"))
    exported = text_format.Parse(text, model_config_pb2.ModelConfig())
    served = json_format.ParseDict(
        httpx.get(server.url + "/v2/models/vggnet/config").json(), model_config_pb2.ModelConfig()
    )

    def interface(config):  # what a client needs: the required inputs, the outputs, the batching, the parameters
        needed = [(i.name, i.data_type, list(i.dims)) for i in config.input if not i.optional]
        outputs = [(o.name, o.data_type, list(o.dims), o.label_filename) for o in config.output]
        params = {k: json.loads(v.string_value) for k, v in config.parameters.items()}
        return needed, outputs, config.max_batch_size, config.HasField("dynamic_batching"), params

    assert interface(exported) == interface(served)
    assert (folder / "labels.txt").read_text().split() == CLASSES
    ((_, _, dims),) = interface(exported)[0]
    x = np.random.default_rng(0).normal(size=(3, *dims)).astype(np.float32)
    onnx_model = ort.InferenceSession(str(folder / "1" / "model.onnx"))
    expected = onnx_model.run(["probabilities"], {"image": x})[0]  # what Triton's onnxruntime backend computes
    answers = []
    for module, url in ((triton_http, f"127.0.0.1:{server.port}"), (triton_grpc, f"127.0.0.1:{server.grpc_port}")):
        client = module.InferenceServerClient(url)
        tensor = module.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        answers.append(client.infer("vggnet", [tensor]).as_numpy("probabilities"))
    for got in answers:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_the_page_classifies_an_upload_in_a_real_browser(server, local, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chromium(tmp_path / "profile")
    try:
        browser.get(server.url + "/")
        WebDriverWait(browser, 30).until(lambda b: "3 classes" in b.find_element(By.ID, "model").text)
        path = tmp_path / "upload.png"
        path.write_bytes(png(64, 48, 21))
        browser.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                         in ("explained", "error"))  # fmt: skip
        rows = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
        shown = [(r.get_attribute("data-class"), float(r.get_attribute("data-probability"))) for r in rows]
        expected = local.classify(local.preprocess(path.read_bytes())[None])[0]
        assert [c for c, _ in shown] == [CLASSES[i] for i in expected.argsort(descending=True)]
        assert shown[0][1] == pytest.approx(float(expected.max()), abs=1e-5)
        assert browser.find_element(By.ID, "cam").get_attribute("src").startswith("data:image/png;base64,")
        shot = os.environ.get("VGGNET_SCREENSHOT")
        browser.save_screenshot(shot or str(tmp_path / "page.png"))
    finally:
        browser.quit()


@pytest.mark.slow
def test_an_exported_model_is_served_through_the_engine_asked_for(weights, local, tmp_path):
    """One engine as a user starts it (OpenVINO where installed); each engine's outputs are tested in-process
    (tests/test_engines.py), and auto's choice too."""
    from vggnet.engines.select import installed
    from vggnet.export import export
    from vggnet.inference.loading import load_model

    engine = "openvino" if "openvino" in installed() else "onnxruntime"
    export(load_model(weights), tmp_path, ("onnx",))
    flags = ("--fixed-batches", "on", "--max-batch", "4") if engine == "openvino" else ()
    s = Server(tmp_path / "model.onnx", "--engine", engine, *flags)
    try:
        meta = httpx.get(s.url + "/v2/models/vggnet").json()
        platform = {"openvino": "openvino", "onnxruntime": "onnxruntime_onnx"}[engine]
        assert meta["platform"] == platform and meta["parameters"]["classes"] == CLASSES
        image = png(70, 50, 31)
        got = httpx.post(s.url + "/predict", content=image, timeout=30).json()["top"]
        expected = local.classify(local.preprocess(image)[None])[0]
        assert [t["class"] for t in got] == [CLASSES[i] for i in expected.argsort(descending=True)]
        assert got[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-4)
        refused = httpx.post(s.url + "/explain", content=image, timeout=30)
        assert refused.status_code == 501 and "needs the PyTorch weights" in refused.json()["error"]
    finally:
        code, out, _ = s.stop()
        assert code == 0
    if engine == "openvino":  # the batches OpenVINO runs on copies compiled for their shape, said in the first line
        assert "OpenVINO batches 1: fixed (asked), 2: fixed (asked), 4: fixed (asked)" in out.splitlines()[0]
