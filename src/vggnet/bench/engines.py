"""Every installed inference engine side by side, in one process, on the same inputs: PyTorch eager (vggnet's
prepared model), onnxruntime and OpenVINO, each in the arithmetic it offers on this CPU (float32; bf16 where the CPU
has bf16 units; int8 through the QDQ file ``export --int8`` writes), batch 1 (latency) and batch 8 (throughput), the
runs taking turns (:func:`vggnet.base.timing.take_turns`). Ratios are against the fastest run of the same batch, and the
rows ``auto`` would pick for an exported float32 and int8 model are marked: that is what ``serve`` and ``predict``
use by default."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.timing import take_turns
from ..data.sources import Source
from ..engines.select import choose, installed, open_engine
from ..export import Int8Settings, export
from ..inference.folding import prepare
from ..inference.loading import Loaded
from ..network.model import build


def models() -> dict[str, tuple[Loaded, int]]:
    """The two models measured, with their MACs per image: VGG-16 at 224 (ImageNet's normalisation, Q = 256) and
    the main job's net (VGG-13 with BN at 1/4 width, the compact head, 1 x 32 x 32 Fashion-MNIST inputs)."""
    vgg16 = build("vgg16").eval()
    main = build("vgg13_bn", width=0.25, in_channels=1, num_classes=10, pool_size=1, fc_width=256).eval()
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    return {
        "VGG-16 at 224": (Loaded(vgg16, [f"c{i}" for i in range(1000)], *imagenet, 224, "vgg16", 256, 0), 224),
        "main job's VGG-13 (BN, 1/4 width) at 32": (
            Loaded(main, [f"c{i}" for i in range(10)], [0.29], [0.35], 32, "main job", 28, 2),
            32,
        ),
    }


@dataclass
class Figure:
    name: str
    images_per_s: float
    gflops: float  # achieved, from the model's multiply-accumulates


def exported(loaded: Loaded, work: Path) -> dict[str, Path]:
    """The model exported as ``vggnet export --int8`` would (float32 and int8 ONNX), calibrated on random images
    (speed does not depend on what the calibration saw)."""
    side = loaded.default_scale + 2 * loaded.pad
    images = torch.randint(
        0, 256, (8, loaded.model.in_channels, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    source = Source("random images", [], lambda: iter([(images, torch.zeros(8, dtype=torch.long))]), 8)
    int8 = Int8Settings(calibration=6, check=2, min_agreement=0.0, calibrate_on=source, check_on=source)
    with contextlib.redirect_stdout(io.StringIO()):
        results = export(loaded, work / "export", ("onnx",), int8=int8)
    return {"float32": Path(results["onnx"]["path"]), "int8": Path(results["int8"]["path"])}


def engine_runs(loaded: Loaded, files: dict[str, Path], x: torch.Tensor) -> dict[str, Callable[[], None]]:
    """One callable per (engine, arithmetic) this machine has: PyTorch first."""
    from ..base.hardware import cpu_has_bf16

    net = prepare(loaded.model)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def torch_run(bf16: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x_cl)

        return run

    runs = {"PyTorch eager f32": torch_run(False)}
    bf16 = cpu_has_bf16()
    if bf16:
        runs["PyTorch eager bf16 (autocast)"] = torch_run(True)
    for engine in installed():
        for kind, path in files.items():
            precisions = ["f32", "bf16"] if engine == "openvino" and bf16 and kind == "float32" else ["f32"]
            for precision in precisions:
                label = {"float32": precision, "int8": "int8"}[kind]
                try:
                    model = open_engine(path, engine, precision=precision)
                except ValueError as err:  # say so in the table's stead, and measure the rest
                    print(f"{engine} {label}: not measured: {err}")
                    continue
                runs[f"{engine} {label}"] = lambda m=model: m(x)
    return runs


def measure_model(label: str, loaded: Loaded, side: int, work: Path, batches: list[int], repeats: int) -> list[Figure]:
    """Every engine on ``loaded`` at each batch size, the engines taking turns in each repeat, each timing long
    enough for its thread pool's wake-up not to count; the rows ``auto`` picks are marked."""
    files = exported(loaded, work)
    picks = {"f32": choose(files["float32"], refresh=True), "int8": choose(files["int8"], refresh=True)}
    macs = macs_of(loaded, side)
    figures = []
    for batch in batches:
        x = torch.randn(batch, loaded.model.in_channels, side, side)
        for name, rate in take_turns(engine_runs(loaded, files, x), batch, repeats, least=0.2).items():
            mark = " (auto's pick)" if name in (f"{picks['f32']} f32", f"{picks['int8']} int8") else ""
            figures.append(Figure(f"{label}, batch {batch}: {name}{mark}", rate, rate * macs * 2 / 1e9))
    return figures


def macs_of(loaded: Loaded, side: int) -> float:
    from ..network.sizes import summarize

    return summarize(loaded.model, side).gmacs * 1e9


def engines_table(figures: list[Figure], ceiling: float) -> str:
    """Rows grouped by model and batch; ratios against the fastest of the group and the machine's matmul rate."""
    lines = [
        "| run | images/s | ms per batch | vs fastest | GFLOP/s | % of float32 matmul |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[Figure]] = {}
    for f in figures:
        groups.setdefault(f.name.split(": ")[0], []).append(f)
    for group, rows in groups.items():
        best = max(r.images_per_s for r in rows)
        batch = int(group.rsplit("batch ", 1)[1])
        for f in rows:
            lines.append(
                f"| {f.name} | {f.images_per_s:.2f} | {1000 * batch / f.images_per_s:.1f} | "
                f"{f.images_per_s / best:.2f}x | {f.gflops:.0f} | {100 * f.gflops / ceiling:.0f}% |"
            )
    return "\n".join(lines)


def run_engines(batches: list[int], repeats: int, work: Path, only_model: str | None = None) -> list[Figure]:
    figures = []
    for label, (loaded, side) in models().items():
        if only_model and only_model not in label:
            continue
        figures += measure_model(
            label, loaded, side, work / label.split()[0].lower().replace("'", ""), batches, repeats
        )
    return figures
