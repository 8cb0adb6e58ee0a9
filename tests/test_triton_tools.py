"""The service as Triton's and KServe's own tools meet it: ``vggnet serve`` started as a user starts it, spoken to
by tritonclient.grpc, KServe's REST and gRPC clients, perf_analyzer, and raw sockets for what clients rarely do."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from helpers import SERVED_CLASSES as CLASSES
from helpers import png
from PIL import Image
from test_serve import Server

import vggnet
from vggnet.web.engine import Engine

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(weights):  # noqa: F811
    s = Server(weights, "--max-batch", "8", "--max-body", "300000")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local(weights):  # noqa: F811
    return Engine.load(str(weights))


def test_tritonclient_grpc_round_trip(server, local):
    import tritonclient.grpc as triton
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    client = triton.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("vggnet")
    assert client.get_server_metadata().extensions == [
        "binary_tensor_data", "classification", "model_configuration", "statistics"
    ]  # fmt: skip
    meta = client.get_model_metadata("vggnet")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("image", "FP32", [-1, 3, 32, 32]), ("image_bytes", "BYTES", [-1, 1])
    ]  # fmt: skip
    config = client.get_model_config("vggnet").config
    http_config = httpx.get(server.url + "/v2/models/vggnet/config").json()
    assert json_format.MessageToDict(config, preserving_proto_field_name=True)["name"] == http_config["name"]
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [3, 32, 32]
    x = torch.randn(3, 3, 32, 32)
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.numpy())
    got = client.infer("vggnet", [tensor]).as_numpy("probabilities")
    np.testing.assert_allclose(got, local.classify(x).numpy(), rtol=1e-4, atol=1e-6)
    top = client.infer("vggnet", [tensor], outputs=[triton.InferRequestedOutput("probabilities", class_count=2)])
    score, index, label = top.as_numpy("probabilities")[0, 0].decode().split(":")
    probs = local.classify(x)[0]  # the top class, up to float noise (another thread count sums in another order)
    assert label == CLASSES[int(index)] and float(probs[int(index)]) >= float(probs.max()) - 1e-5
    encoded = triton.InferInput("image_bytes", [2, 1], "BYTES")
    encoded.set_data_from_numpy(np.array([[png(40, 40, 1)], [png(64, 48, 2)]], dtype=np.object_))
    by_bytes = client.infer("vggnet", [encoded]).as_numpy("probabilities")
    expected = local.classify(torch.stack([local.preprocess(png(40, 40, 1)), local.preprocess(png(64, 48, 2))]))
    np.testing.assert_allclose(by_bytes, expected.numpy(), rtol=1e-4, atol=1e-6)
    import grpc  # typed contents (not raw), as other clients send them

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="vggnet")
        request.inputs.add(name="image", datatype="FP32", shape=list(x.shape)).contents.fp32_contents.extend(
            x.flatten().tolist()
        )
        answer = stub.ModelInfer(request)
        typed = np.frombuffer(answer.raw_output_contents[0], dtype=np.float32).reshape(3, 3)
    np.testing.assert_allclose(typed, got, rtol=1e-6)
    stats = client.get_inference_statistics("vggnet").model_stats[0]
    assert stats.inference_count >= 3 + 3 + 2 + 3 and stats.execution_count >= 4
    assert stats.inference_stats.success.count >= 4 and stats.inference_stats.compute_infer.ns > 0


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("shape", "INVALID_ARGUMENT", r"shape \[N, 3, 32, 32\]"),
        ("datatype", "INVALID_ARGUMENT", "must be FP32"),
        ("raw", "INVALID_ARGUMENT", "bytes for a FP32 tensor of shape"),
        ("too large", "RESOURCE_EXHAUSTED", ""),
        ("model", "NOT_FOUND", "unknown model 'resnet'"),
        ("version", "NOT_FOUND", "unknown version '3'"),
        ("image", "INVALID_ARGUMENT", "not an image"),
    ],
)
def test_grpc_bad_requests_get_their_status_code_and_a_sentence(server, case, code, message):
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    shape, datatype, raw = [1, 3, 32, 32], "FP32", np.zeros((1, 3, 32, 32), np.float32).tobytes()
    name, version = "vggnet", ""
    if case == "shape":
        shape, raw = [1, 3, 16, 16], np.zeros((1, 3, 16, 16), np.float32).tobytes()
    elif case == "datatype":
        datatype, raw = "INT32", np.zeros((1, 3, 32, 32), np.int32).tobytes()
    elif case == "raw":
        raw = raw[:-8]
    elif case == "too large":
        shape, raw = [100, 3, 32, 32], np.zeros((100, 3, 32, 32), np.float32).tobytes()  # 1.2 MB > --max-body
    elif case == "model":
        name = "resnet"
    elif case == "version":
        version = "3"
    request = service_pb2.ModelInferRequest(model_name=name, model_version=version)
    if case == "image":
        request.inputs.add(name="image_bytes", datatype="BYTES", shape=[1])
        raw = len(b"not a picture").to_bytes(4, "little") + b"not a picture"
    else:
        request.inputs.add(name="image", datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=30)
        assert caught.value.code() == getattr(grpc.StatusCode, code)
        assert re.search(message, caught.value.details()) and "Traceback" not in caught.value.details()
        assert stub.ServerLive(service_pb2.ServerLiveRequest()).live  # and the server goes on


KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

url, grpc_url = sys.argv[1], sys.argv[2]
x = np.load(sys.argv[3])

async def talk():
    found = {}
    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    found["rest health"] = [await rest.is_server_live(url), await rest.is_server_ready(url),
                            await rest.is_model_ready(url, "vggnet")]
    tensor = InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    answer = await rest.infer(url, InferRequest("vggnet", [tensor]), model_name="vggnet")
    found["rest"] = answer.outputs[0].as_numpy().tolist()
    await rest.close()
    client = InferenceGRPCClient(grpc_url)
    found["grpc health"] = [await client.is_server_live(), await client.is_server_ready(),
                            await client.is_model_ready("vggnet")]
    tensor = InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    found["grpc"] = (await client.infer(InferRequest("vggnet", [tensor]))).outputs[0].as_numpy().tolist()
    await client.close()
    return found

print(json.dumps(asyncio.run(talk())))
"""


def test_kserve_clients_health_and_inference(server, local, tmp_path):
    """KServe's SDK in a process of its own (its protobuf module and tritonclient's define the same messages)."""
    import sys

    x = torch.randn(2, 3, 32, 32)
    np.save(tmp_path / "x.npy", x.numpy())
    done = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, server.url, f"127.0.0.1:{server.grpc_port}", str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["rest health"] == found["grpc health"] == [True, True, True]
    expected = local.classify(x).numpy()
    for way in ("rest", "grpc"):
        np.testing.assert_allclose(np.array(found[way]).reshape(2, 3), expected, rtol=1e-4, atol=1e-6)


VENV_PA = ROOT / ".venv" / "bin" / "perf_analyzer"
PERF_ANALYZER = shutil.which("perf_analyzer") or (str(VENV_PA) if VENV_PA.exists() else None)


@pytest.mark.skipif(PERF_ANALYZER is None, reason="perf_analyzer is not installed (scripts/perf_analyzer.sh)")
def test_perf_analyzer_measures_the_service_over_http_and_grpc(server, local, tmp_path):
    rng = np.random.default_rng(0)
    data = []
    for _ in range(4):  # real images, brought to the model's input as the metadata's parameters say
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
        x = local.preprocess(buffer.getvalue())
        data.append({"image": {"content": x.flatten().tolist(), "shape": list(x.shape)}})
    (tmp_path / "images.json").write_text(json.dumps({"data": data}))
    runs = {
        "http, images": ["-i", "http", "-u", f"127.0.0.1:{server.port}", "--input-data", str(tmp_path / "images.json")],
        "grpc, images": [
            "-i",
            "grpc",
            "-u",
            f"127.0.0.1:{server.grpc_port}",
            "--input-data",
            str(tmp_path / "images.json"),
        ],
        "http, random": ["-i", "http", "-u", f"127.0.0.1:{server.port}", "--input-data", "random"],
        "grpc, defaults": ["-i", "grpc", "-u", f"127.0.0.1:{server.grpc_port}"],
    }
    bounded = ["--measurement-mode", "count_windows", "--measurement-request-count", "30", "-s", "100", "-r", "4"]
    for label, args in runs.items():
        done = subprocess.run([PERF_ANALYZER, "-m", "vggnet", *args, *bounded, "--concurrency-range", "1:2"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, (label, done.stdout[-2000:], done.stderr[-2000:])
        rates = re.findall(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec", done.stdout)
        assert [c for c, _ in rates] == ["1", "2"] and all(float(r) > 0 for _, r in rates), (label, done.stdout)
        assert "Server:" in done.stdout and "compute infer" in done.stdout  # its server-side report, from /stats


def raw_request(port: int, head: str, body: bytes = b"", wait: float = 0.0) -> tuple[bytes, float]:
    """What the service answers on a raw connection, and the seconds to its first byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        started = time.monotonic()
        s.sendall(head.encode() + body)
        first = s.recv(65536)
        took = time.monotonic() - started
        if wait:
            s.settimeout(wait)
        reply = first
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return reply, took


def test_a_huge_content_length_is_answered_413_at_once(server):
    head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000000000\r\n\r\n"
    reply, took = raw_request(server.port, head, b"\x89PNG" + b"x" * 60_000, wait=1.0)
    assert reply.startswith(b"HTTP/1.1 413") and took < 2.0, (reply[:200], took)
    assert b"more than the 300,000 allowed" in reply
    assert httpx.post(server.url + "/predict", content=png(40, 40, 3), timeout=30).status_code == 200


def test_http_1_0_is_not_sent_100_continue(server):
    image = png(40, 40, 4)
    head = f"POST /predict HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len(image)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head.encode())
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):  # nothing: HTTP/1.0 has no 100 Continue, the server waits for the body
            s.recv(100)
        s.settimeout(30)
        s.sendall(image)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b"100 Continue" not in reply
    head11 = f"POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len(image)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head11.encode())
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")  # HTTP/1.1 still is


def test_ready_only_after_the_warm_up_and_its_time_in_the_first_line(tmp_path):
    model = vggnet.build("vgg16", width=1 / 4, num_classes=3, pool_size=1, fc_width=64).eval()  # a warm-up of seconds
    slow = vggnet.save_weights(model, tmp_path / "slow.safetensors")
    s = Server(slow, "--max-batch", "16", wait_ready=False)
    s.wait_ready()
    code, out, _ = s.stop()
    assert s.health[0] == (200, 400) and s.health[-1] == (200, 200), s.health  # live, not ready, while warming up
    first = out.splitlines()[0]
    assert re.search(r"ready, warmed up in \d+\.\d\d s \(batches of 1 and 16\)", first), first
    quick = Server(slow, "--no-warmup")
    assert quick.health[0] == (200, 200)
    _, out, _ = quick.stop()
    assert "no warm-up (--no-warmup)" in out.splitlines()[0]
