"""Speed against torchvision, measured in one process with the two sides' runs alternated.

Each figure is the median over repeats of images per second, with the peak memory the run added (CUDA: the
allocator's peak; CPU: the process's resident set, sampled). Ratios are vggnet / torchvision.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .files import atomic_write_bytes, atomic_write_text
from .inference import posteriors, prepare
from .model import build
from .settings import AT_LEAST_ONE, RUNTIME, Range, setting

SECTIONS = ("inference", "train", "dense", "data", "engines")


@dataclass
class BenchSettings:
    """``vggnet bench``: what to measure, against torchvision's VGG in one process."""

    arch: str = setting("vgg16", "configuration")
    device: str = setting("cpu", "cpu or cuda", role=RUNTIME)
    only: list[str] = setting(
        ["inference", "train", "dense", "data"],
        "which measurements (engines: PyTorch, onnxruntime and OpenVINO side by side, float32, bf16 and int8, on "
        "VGG-16 and the main job's model)",
        choices=SECTIONS,
    )
    batch: list[int] = setting([1, 8], "inference batch sizes", AT_LEAST_ONE)
    train_batch: int = setting(8, "training-step batch", AT_LEAST_ONE)
    q: int = setting(384, "test scale of the dense vs multi-crop run", Range(224))
    repeats: int = setting(5, "timed repeats of each run", AT_LEAST_ONE)
    compile: bool = setting(False, "also time torch.compile'd vggnet")
    amp: bool = setting(False, "also time bf16 autocast (skipped where bf16 is emulated)")
    threads: int | None = setting(None, "torch threads (default: PyTorch's)", AT_LEAST_ONE, role=RUNTIME)
    images: str = setting("runs/bench_jpegs", "folder of JPEGs for the data pipeline (made if empty)", role=RUNTIME)
    out: str | None = setting(None, "also write the table to this Markdown file", role=RUNTIME)


@dataclass
class Figure:
    name: str
    images_per_s: float
    peak_mib: float
    gflops: float  # achieved, from the model's multiply-accumulates


class PeakMemory:
    """Peak memory that tensors allocated while the block ran, above what was allocated before it: the CUDA
    allocator's own peak, or on the CPU the running sum of the profiler's allocation records (the process's
    resident set would not show memory the allocator reuses)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            # Kineto's start/stop lines, "gpuGetDeviceCount failed" on CPU-only machines and the allocator's notes
            # on blocks from before the profile go to file descriptor 2 while it runs: silenced until __exit__.
            self.quiet = quiet_stderr()
            self.quiet.__enter__()
            self.profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self.profiler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
            return
        try:
            self.profiler.__exit__(*exc)
        finally:
            self.quiet.__exit__(None, None, None)
        # Each event's own allocations minus frees (children excluded), in time order: a running total.
        records = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in self.profiler.events())
        current = top = 0
        for _, change in records:
            current += change
            top = max(top, current)
        self.peak = top / 2**20


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what C++ libraries write to file descriptor 2 (Python's own sys.stderr included) for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(
    runs: dict[str, Callable[[], None]],
    images: int,
    device: torch.device,
    repeats: int = 5,
    warmup: int = 1,
    macs_per_image: float = 0.0,
    flop_factor: float = 2.0,
) -> list[Figure]:
    """Time each run ``repeats`` times, the runs taking turns, after ``warmup`` calls each; median images/s.

    Memory is measured in one more call of each run, apart from the timed ones (the CPU sampler would steal time).
    """
    peaks: dict[str, float] = {}
    for name, fn in runs.items():
        for _ in range(warmup):
            fn()
        with PeakMemory(device) as mem:
            fn()
        peaks[name] = mem.peak
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    figures = []
    for name in runs:
        rate = images / statistics.median(times[name])
        figures.append(Figure(name, rate, peaks[name], rate * macs_per_image * flop_factor / 1e9))
    return figures


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """The machine's measured matrix-multiply rate (GFLOP/s), the ceiling for convolution-heavy work."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def vgg_macs(arch: str, size: int = 224) -> float:
    from .info import summarize

    with torch.device("meta"):
        model = build(arch)
    return summarize(model, size).gmacs * 1e9


def inference(
    arch: str, batch: int, device: torch.device, repeats: int, compile: bool = False, amp: bool = False
) -> list[Figure]:
    import torchvision

    tv = getattr(torchvision.models, arch)().eval().to(device)
    tv_cl = getattr(torchvision.models, arch)().eval().to(device, memory_format=torch.channels_last)
    ours_model = build(arch).eval()
    ours_model.load_state_dict(tv.state_dict())
    ours = prepare(ours_model, device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(model: torch.nn.Module, inp: torch.Tensor, mode: Callable = torch.no_grad, bf16: bool = False):
        def fn() -> None:
            with mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model(inp)

        return fn

    plain = build(arch).eval().to(device)  # what a Python user gets: no prepare(), NCHW input, no_grad
    plain.load_state_dict(tv.state_dict())
    runs = {
        f"torchvision {arch}, batch {batch}": run(tv, x),
        f"torchvision {arch} + channels_last, batch {batch}": run(tv_cl, x_cl),
        f"vggnet {arch} as built (build().eval(), NCHW input), batch {batch}": run(plain, x),
        f"vggnet {arch} prepared (BN folded, inference_mode), batch {batch}": run(ours, x_cl, torch.inference_mode),
    }
    if compile:
        compiled = prepare(ours_model, device, compile=True)
        runs[f"vggnet {arch} + torch.compile, batch {batch}"] = run(compiled, x_cl, torch.inference_mode)
    if amp:
        runs[f"vggnet {arch} bf16 autocast, batch {batch}"] = run(ours, x_cl, torch.inference_mode, True)
    with torch.no_grad():  # all sides compute the same function
        torch.testing.assert_close(ours(x_cl), tv(x), rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(plain(x), tv(x), rtol=1e-3, atol=1e-3)
    return alternate(runs, batch, device, repeats, warmup=2 if compile else 1, macs_per_image=vgg_macs(arch))


def train_step_fn(
    model: torch.nn.Module, batch: int, device: torch.device, channels_last: bool, bf16: bool, fused: bool = False
) -> Callable[[], None]:
    """One SGD step (forward, backward, update) on a fixed random batch, as a closure. ``fused`` is vggnet's
    optimizer setting (as in ``vggnet train``); torchvision's reference scripts use PyTorch's default (foreach)."""
    model = model.train().to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4, fused=fused or None)
    x = torch.randn(batch, 3, 224, 224, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def training_step(
    arch: str,
    batch: int,
    device: torch.device,
    repeats: int,
    amp: bool = False,
    compile: bool = False,
    same_settings: bool = False,
) -> list[Figure]:
    """vggnet's training step against torchvision's: as torchvision is used by default (float32, NCHW), or with
    ``same_settings`` under the same bf16 autocast and channels_last, eager and (with ``compile``) compiled."""
    import torchvision

    def tv() -> torch.nn.Module:
        return getattr(torchvision.models, arch)()

    # same_settings: both sides under bf16 autocast, channels_last and the fused optimizer.
    bf16 = amp and same_settings
    label = " bf16 channels_last" if same_settings else ""
    name = f"{arch}{label} train step, batch {batch}"
    runs = {
        f"torchvision {name}": train_step_fn(tv(), batch, device, same_settings, bf16, same_settings),
        f"vggnet {name}": train_step_fn(build(arch), batch, device, True, bf16, True),
    }
    if amp and not same_settings:
        runs[f"vggnet {arch} train step bf16 autocast, batch {batch}"] = train_step_fn(
            build(arch), batch, device, True, True, True
        )
    if compile:
        if same_settings:
            runs[f"torchvision {name}, compiled"] = train_step_fn(
                torch.compile(tv().to(device)), batch, device, True, bf16, True
            )
        runs[f"vggnet {name}, compiled"] = train_step_fn(
            torch.compile(build(arch).to(device)), batch, device, True, bf16, True
        )
    return alternate(
        runs, batch, device, repeats, warmup=3 if compile else 1, macs_per_image=vgg_macs(arch), flop_factor=6.0
    )


def dense_vs_multicrop(arch: str, q: int, device: torch.device, repeats: int) -> list[Figure]:
    """One Q x Q image: the paper's dense evaluation (with flip) against 50-crop multi-crop on torchvision's model."""
    import torchvision

    tv = getattr(torchvision.models, arch)().eval().to(device, memory_format=torch.channels_last)
    ours_model = build(arch).eval()
    ours_model.load_state_dict(tv.state_dict())
    ours = prepare(ours_model, device)
    x = torch.randn(1, 3, q, q, device=device).contiguous(memory_format=torch.channels_last)
    crops_per_image = 50
    boxes = [
        (t, left)
        for t in torch.linspace(0, q - 224, 5).round().int().tolist()
        for left in torch.linspace(0, q - 224, 5).round().int().tolist()
    ]

    def tv_multicrop() -> None:
        with torch.inference_mode():
            for i in range(0, len(boxes), 5):
                crops = torch.cat([x[..., t : t + 224, u : u + 224] for t, u in boxes[i : i + 5]])
                tv(torch.cat([crops, crops.flip(3)]))

    def ours_dense() -> None:
        posteriors(ours, x, "dense", 224)

    macs = vgg_macs(arch)
    figures = alternate(
        {
            f"torchvision {arch} multi-crop (50 crops), Q={q}": tv_multicrop,
            f"vggnet {arch} dense (+ flip), Q={q}": ours_dense,
        },
        1,
        device,
        repeats,
    )
    figures[0].gflops = figures[0].images_per_s * crops_per_image * macs * 2 / 1e9
    dense_macs = vgg_macs(arch, q)
    figures[1].gflops = figures[1].images_per_s * 2 * dense_macs * 2 / 1e9
    return figures


def data_pipeline(folder: Path, count: int = 48, repeats: int = 3) -> list[Figure]:
    """Training transforms on ImageNet-sized JPEGs in one process (= one DataLoader worker)."""
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms import v2

    from .data.images import decode_image
    from .data.transforms import paper_train_transform

    files = sorted(folder.glob("*.jpg"))
    if not files:
        files = make_jpegs(folder, count)
    ours_transform = paper_train_transform((256, 512), 224)
    tv_transform = v2.Compose(
        [
            v2.RandomResize(256, 513),
            v2.RandomCrop(224),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [1.0, 1.0, 1.0]),
        ]
    )

    def ours() -> None:
        for f in files:
            ours_transform(decode_image(f))

    def tv() -> None:
        for f in files:
            tv_transform(decode_jpeg(read_file(str(f))))

    return alternate(
        {
            "torchvision.transforms.v2 (decode_jpeg, resize, crop, flip)": tv,
            "vggnet paper pipeline (safe decode, jitter, crop, flip, colour shift)": ours,
        },
        len(files),
        torch.device("cpu"),
        repeats,
    )


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """ImageNet-sized JPEGs (500 x 375 on average, smooth content) for the data-pipeline benchmark."""
    from torchvision.io import encode_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        h, w = (375, 500) if i % 2 else (500, 375)
        low = torch.rand(1, 3, h // 25, w // 25, generator=g)
        img = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1) * 255
        img = (img + torch.rand(3, h, w, generator=g) * 40).clamp(0, 255).to(torch.uint8)
        path = folder / f"img{i:03d}.jpg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29: encoders move to TorchCodec
            data = encode_jpeg(img, quality=90)
        atomic_write_bytes(path, data.numpy().tobytes())
        paths.append(path)
    return paths


def table(sections: list[tuple[str, list[Figure]]], ceiling: float) -> str:
    """The figures as a Markdown table; each section's first row is the torchvision reference of its ratios."""
    lines = [
        "| run | images/s | vs torchvision | peak memory (MiB) | GFLOP/s | % of matmul |",
        "|---|---|---|---|---|---|",
    ]
    for _, figures in sections:
        ref = figures[0].images_per_s
        for f in figures:
            share = f"{100 * f.gflops / ceiling:.0f}%" if f.gflops else "-"
            gflops = f"{f.gflops:.0f}" if f.gflops else "-"
            lines.append(
                f"| {f.name} | {f.images_per_s:.2f} | {f.images_per_s / ref:.2f}x | {f.peak_mib:.0f} | "
                f"{gflops} | {share} |"
            )
    return "\n".join(lines)


def decode_for_bench(path: Path) -> torch.Tensor:
    from torchvision.transforms.v2.functional import center_crop

    from .data.images import decode_image

    return center_crop(decode_image(path), [375, 375])


def run_bench(args: BenchSettings) -> str:
    """``vggnet bench``: the sections ``args.only`` names, each printed as it is measured, then the whole table."""
    from .hardware import cpu_has_bf16, cpu_name

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = args.amp
    if amp and device.type == "cpu" and not cpu_has_bf16():
        print("bf16 runs skipped: this CPU has no bf16 units (AVX-512 BF16 or AMX); PyTorch would emulate them")
        amp = False
    fp32 = matmul_gflops(device)
    bf16 = f"{matmul_gflops(device, torch.bfloat16):.0f} bfloat16" if amp or device.type == "cuda" else "bf16 -"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {torch.get_num_threads()} threads"
    )
    header = f"machine: {name}; torch {torch.__version__}; matmul {fp32:.0f} GFLOP/s float32, {bf16}"
    print(header, flush=True)
    sections: list[tuple[str, list[Figure]]] = []
    measure = {
        "inference": lambda: [inference(args.arch, b, device, args.repeats, args.compile, amp) for b in args.batch],
        "train": lambda: [training_step(args.arch, args.train_batch, device, args.repeats, amp, args.compile)],
        "dense": lambda: [dense_vs_multicrop(args.arch, args.q, device, max(1, args.repeats // 2))],
        "data": lambda: [data_pipeline(Path(args.images))],
    }
    engines = ""
    for kind in args.only:
        if kind == "engines":
            from .bench_engines import engines_table, run_engines

            engines = engines_table(
                run_engines(args.batch, args.repeats, Path(args.images).parent / "bench_engines"), fp32
            )
            print(engines, flush=True)
            continue
        for figures in measure[kind]():
            sections.append((kind, figures))
            print(table(sections[-1:], fp32), flush=True)
    text = header + "\n\n" + (table(sections, fp32) + "\n" if sections else "") + (engines + "\n" if engines else "")
    print("\n" + text)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return text
