"""vggnet serve under load, on loopback: requests/s and p50/p95/p99 latency at 1, 8 and 32 concurrent clients, with
dynamic batching against one image at a time (--max-batch 1), errors counted; then an overload of 4x the queue
bound (only 503s beyond it, memory flat, a good request answered within a second of the burst ending).

Each configuration is a real ``vggnet serve`` in a subprocess; the clients are asyncio + httpx in this process,
each posting an image file to /predict, bounded in requests and in time (the script stops by itself).

    python benchmarks/serve.py --weights runs/fashion_mnist/model.safetensors --image some.png
    python benchmarks/serve.py --vgg16   # VGG-16 at 224 x 224 (random weights: speed only), float32 and int8 ONNX
    python benchmarks/serve.py --weights runs/fashion_mnist/model.safetensors --vgg16 --engines onnxruntime openvino

With --engines, each model is also exported (float32 and int8 ONNX) and served through each engine named
(``vggnet serve --engine``), beside PyTorch.

With --perf-analyzer (Triton's load tool, ``scripts/perf_analyzer.sh`` installs it), each model is also measured by
perf_analyzer at concurrency 1 to 8 over HTTP (binary and JSON tensors) and gRPC, on real images brought to the
model's input: its throughput and latency beside the service's own statistics (queue and forward-pass time per
request, read by perf_analyzer from /v2/models/NAME/stats).

    python benchmarks/serve.py --weights runs/fashion_mnist/model.safetensors --vgg16 --perf-analyzer --no-load
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@dataclass
class Level:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``vggnet serve`` in a subprocess, ready when it says so."""

    def __init__(self, weights: str, flags: list[str]) -> None:
        import httpx

        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        argv = [sys.executable, "-m", "vggnet", "serve", "--weights", weights, "--port", str(self.port)]
        argv += ["--grpc-port", str(self.grpc_port), *flags]
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (the access log, a line per request, until stop())
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(600):
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"vggnet serve exited: {self.log.read().strip()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("vggnet serve did not start")

    def rss(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code


async def load(url: str, image: bytes, clients: int, requests: int, limit: float) -> Level:
    """``clients`` concurrent clients posting ``image`` until ``requests`` answers or ``limit`` seconds. The clients
    are aiohttp's (about 0.2 ms of CPU a request here; httpx's pool costs ~5 ms at 32 connections, enough to make
    the load generator, not the service, what is measured on a 2-core machine)."""
    import aiohttp

    latencies: list[float] = []
    errors = left = 0

    async def client(http: aiohttp.ClientSession, stop_at: float) -> None:
        nonlocal left, errors
        while left > 0 and time.perf_counter() < stop_at:
            left -= 1
            started = time.perf_counter()
            async with http.post(url + "/predict", data=image) as answer:
                await answer.read()
                latencies.append(time.perf_counter() - started)
                errors += answer.status != 200

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as http:
        left = clients  # one warm-up request per connection, not counted
        await asyncio.gather(*[client(http, time.perf_counter() + limit) for _ in range(clients)])
        latencies.clear()
        errors, left = 0, requests
        started = time.perf_counter()
        await asyncio.gather(*[client(http, started + limit) for _ in range(clients)])
        seconds = time.perf_counter() - started
    return Level(clients, len(latencies), seconds, latencies, errors)


async def overload(service: Service, image: bytes, burst: int) -> dict[str, float]:
    """``burst`` requests at once, three times: the last burst's statuses, the memory before and after each, and how
    soon a good request is answered after the burst."""
    import aiohttp

    rss = [service.rss()]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=burst)) as http:

        async def post() -> tuple[int, str | None]:
            async with http.post(service.url + "/predict", data=image) as answer:
                await answer.read()
                return answer.status, answer.headers.get("Retry-After")

        for _ in range(3):  # three bursts: memory must not grow from one to the next
            answers = await asyncio.gather(*[post() for _ in range(burst)])
            ended = time.perf_counter()
            good, _ = await post()
            recovered = time.perf_counter() - ended
            rss.append(service.rss())
    codes = [code for code, _ in answers]
    return {"ok": codes.count(200), "503": codes.count(503), "other": len(codes) - codes.count(200) - codes.count(503),
            "retry_after": all(retry for code, retry in answers if code == 503),
            "rss_mib": [round(r / 2**20, 1) for r in rss], "recovered_s": round(recovered, 3),
            "good_after": good}  # fmt: skip


def run_model(label: str, weights: str, image: bytes, args: argparse.Namespace, extra: list[str]) -> list[str]:
    rows = []
    rates: dict[str, dict[int, Level]] = {}
    batching = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    for mode, flags in (("dynamic batching", batching), ("one at a time", ["--max-batch", "1"])):
        service = Service(weights, [*flags, "--max-queue", str(args.max_queue), *extra])
        try:
            for clients in args.clients:
                level = asyncio.run(load(service.url, image, clients, args.requests, args.seconds))
                rates.setdefault(mode, {})[clients] = level
                rows.append(f"| {label} | {mode} | {clients} | {level.requests} | {level.rate:.1f} | "
                            f"{1000 * level.percentile(50):.1f} | {1000 * level.percentile(95):.1f} | "
                            f"{1000 * level.percentile(99):.1f} | {level.errors} |")  # fmt: skip
                print(rows[-1], flush=True)
        finally:
            service.stop()
    top = max(args.clients)
    gain = rates["dynamic batching"][top].rate / rates["one at a time"][top].rate
    p = rates["dynamic batching"][top]
    rows.append(f"| {label} | batching / one at a time at {top} clients | | | **{gain:.2f}x** | p99 / p50 = "
                f"{p.percentile(99) / p.percentile(50):.2f} | | | |")  # fmt: skip
    print(rows[-1], flush=True)
    return rows


PA_COLUMNS = ("Inferences/Second", "p50 latency", "p99 latency", "Server Queue", "Server Compute Infer")


def perf_analyzer_rows(label: str, weights: str, image: bytes, args: argparse.Namespace, extra: list[str]) -> list[str]:
    """perf_analyzer against ``vggnet serve``: concurrency 1-8 over HTTP (binary, JSON) and gRPC, on ``image``
    brought to the model's input; per level its throughput, p50/p99 latency, and the service's queue and
    forward-pass time per request (from its statistics)."""
    import csv
    import json

    from vggnet.web.engine import Engine

    x = Engine.load(weights).preprocess(image)
    folder = Path(tempfile.mkdtemp(prefix="vggnet-pa-"))
    (folder / "images.json").write_text(json.dumps({"data": [{"image": {"content": x.flatten().tolist(),
                                                                        "shape": list(x.shape)}}]}))  # fmt: skip
    service = Service(weights, ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), *extra])
    rows = []
    try:
        ways = {
            "HTTP, binary": ["-i", "http", "-u", f"127.0.0.1:{service.port}"],
            "HTTP, JSON": ["-i", "http", "-u", f"127.0.0.1:{service.port}", "--input-tensor-format", "json",
                           "--output-tensor-format", "json"],
            "gRPC": ["-i", "grpc", "-u", f"127.0.0.1:{service.grpc_port}"],
        }  # fmt: skip
        for way, flags in ways.items():
            report = folder / "report.csv"
            argv = [args.perf_analyzer, "-m", "vggnet", *flags, "--input-data", str(folder / "images.json"),
                    "--concurrency-range", "1:8:1", "--measurement-interval", str(args.pa_interval_ms), "-f",
                    str(report), "-s", str(args.pa_stability)]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                rows.append(f"| {label} | {way} | perf_analyzer failed: {done.stdout[-300:].strip()} |")
                continue
            with open(report) as f:
                for level in csv.DictReader(f):
                    if int(level["Concurrency"]) not in (1, 2, 4, 8):
                        continue
                    rate, p50, p99, queue, infer = (float(level[c]) for c in PA_COLUMNS)
                    rows.append(f"| {label} | {way} | {level['Concurrency']} | {rate:.1f} | {p50 / 1000:.1f} | "
                                f"{p99 / 1000:.1f} | {queue / 1000:.2f} | {infer / 1000:.2f} |")  # fmt: skip
                    print(rows[-1], flush=True)
    finally:
        service.stop()
    return rows


def export_both(weights: str, folder: Path) -> dict[str, str]:
    """The main job's model exported as float32 and int8 ONNX (calibrated and checked on Fashion-MNIST)."""
    from vggnet.export import Int8Settings, export
    from vggnet.inference.loading import load_model

    if not (folder / "model.int8.onnx").exists():
        export(load_model(weights), folder, ("onnx",), int8=Int8Settings(calibration=500, check=1000))
    return {"float32": str(folder / "model.onnx"), "int8": str(folder / "model.int8.onnx")}


def make_vgg16(folder: Path) -> tuple[str, str]:
    """VGG-16 (random weights: for speed only) as vggnet weights, and as an int8 ONNX model made with onnxruntime's
    static quantisation (calibrated on random images)."""
    import torch

    import vggnet
    from vggnet.export import export, quantize_onnx
    from vggnet.export.metadata import write_metadata
    from vggnet.inference.loading import load_model

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "vgg16.safetensors"
    if not weights.exists():
        vggnet.save_weights(vggnet.vgg16(), weights, metadata={"crop": "224", "scale": "256"})
    int8 = folder / "model.int8.onnx"
    if not int8.exists():
        loaded = load_model(weights)
        export(loaded, folder, ("onnx",))

        class Random:
            left = 8

            def get_next(self):
                self.left -= 1
                return {"image": torch.randn(1, 3, 256, 256).numpy()} if self.left >= 0 else None

        quantize_onnx(folder / "model.onnx", int8, Random(), "u8s8")
        from vggnet.export.metadata import exported_metadata

        write_metadata(int8, exported_metadata(loaded, loaded.model, "int8 u8s8"))
    return str(weights), str(int8)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="the model to serve (e.g. the main job's runs/fashion_mnist/model.safetensors)")
    p.add_argument("--image", help="the image every request posts (default: a Fashion-MNIST test image)")
    p.add_argument("--vgg16", action="store_true", help="VGG-16 at 224 x 224, float32 eager and int8 ONNX")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=400, help="requests per level (default 400)")
    p.add_argument("--seconds", type=float, default=60, help="time limit per level (default 60)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--serve-flags", default="", help="more flags for vggnet serve, e.g. '--threads 1'")
    p.add_argument("--no-overload", dest="overload", action="store_false", help="skip the overload run")
    p.add_argument("--engines", nargs="*", default=[], choices=["onnxruntime", "openvino"],
                   help="serve the exported models through each of these engines too")  # fmt: skip
    p.add_argument("--perf-analyzer", nargs="?", const=default_perf_analyzer(), default=None, metavar="PATH",
                   help="also measure with Triton's perf_analyzer (default: .venv/bin/perf_analyzer)")  # fmt: skip
    p.add_argument("--pa-interval-ms", type=int, default=3000, help="perf_analyzer's measurement window")
    p.add_argument("--pa-stability", type=int, default=20, help="perf_analyzer's stability percentage")
    p.add_argument("--no-load", dest="load", action="store_false", help="skip this script's own load levels")
    args = p.parse_args()
    extra = args.serve_flags.split()
    image = Path(args.image).read_bytes() if args.image else fashion_image()
    rows = ["| model | mode | clients | requests | requests/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    if args.weights and args.load:
        rows += run_model(Path(args.weights).name, args.weights, image, args, extra)
    if args.perf_analyzer:
        rows += perf_analyzer_section(args, image, extra)
    if args.weights and args.overload:
        service = Service(
            args.weights, ["--max-batch", str(args.max_batch), "--max-queue", str(args.max_queue), *extra]
        )
        try:
            found = asyncio.run(overload(service, image, 4 * args.max_queue))
        finally:
            code = service.stop()
        print(f"\noverload of {4 * args.max_queue} requests at once (queue bound {args.max_queue}): {found}; "
              f"exit status after SIGTERM {code}")  # fmt: skip
    if args.weights and args.engines:
        for kind, path in export_both(args.weights, ROOT / "runs" / "bench_serve" / "main").items():
            for engine in args.engines:
                rows += run_model(f"{Path(args.weights).name} {kind} ({engine})", path, image, args,
                                  ["--engine", engine, *extra])  # fmt: skip
    if args.vgg16 and args.load:
        weights, int8 = make_vgg16(ROOT / "runs" / "bench_serve")
        big = photo()
        rows += run_model("VGG-16 float32 (PyTorch)", weights, big, args, extra)
        exported = {"float32": str(Path(int8).with_name("model.onnx")), "int8": int8}
        for kind, path in exported.items():
            for engine in args.engines or ["onnxruntime"]:
                rows += run_model(f"VGG-16 {kind} ({engine})", path, big, args, ["--engine", engine, *extra])
    print("\n" + "\n".join(rows))
    return 0


def default_perf_analyzer() -> str:
    import shutil

    return shutil.which("perf_analyzer") or str(ROOT / ".venv" / "bin" / "perf_analyzer")


def perf_analyzer_section(args: argparse.Namespace, image: bytes, extra: list[str]) -> list[str]:
    head = "| model | protocol | concurrency | inferences/s | p50 ms | p99 ms | server queue ms | server forward ms |"
    rows = ["", head, "|---|---|---|---|---|---|---|---|"]
    if args.weights:
        rows += perf_analyzer_rows(Path(args.weights).name, args.weights, image, args, extra)
    if args.vgg16:
        import vggnet

        weights = ROOT / "runs" / "bench_serve" / "vgg16.safetensors"
        if not weights.exists():
            weights.parent.mkdir(parents=True, exist_ok=True)
            vggnet.save_weights(vggnet.vgg16(), weights, metadata={"crop": "224", "scale": "256"})
        rows += perf_analyzer_rows("VGG-16 float32 (PyTorch)", str(weights), photo(), args, extra)
    return rows


def fashion_image() -> bytes:
    from PIL import Image

    from vggnet.data.fashion_mnist import load_fashion_mnist

    buffer = io.BytesIO()
    Image.fromarray(load_fashion_mnist(split="test").originals[0, 0].numpy()).save(buffer, "PNG")
    return buffer.getvalue()


def photo() -> bytes:
    """A 500 x 375 JPEG (a typical photo's size) of smooth random colour."""
    import torch
    from torchvision.io import encode_jpeg
    from torchvision.transforms.v2.functional import resize

    g = torch.Generator().manual_seed(0)
    small = (torch.rand(3, 12, 16, generator=g) * 255).to(torch.uint8)
    return encode_jpeg(resize(small, [375, 500], antialias=True), quality=90).numpy().tobytes()


if __name__ == "__main__":
    raise SystemExit(main())
