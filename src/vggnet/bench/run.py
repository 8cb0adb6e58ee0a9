"""``vggnet bench``: speed against torchvision, measured in one process with the two sides' runs alternated.

Each figure is the median over repeats of images per second, with the peak memory the run added (CUDA: the
allocator's peak; CPU: the process's resident set, sampled). Ratios are vggnet / torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.files import atomic_write_text
from ..base.settings import AT_LEAST_ONE, RUNTIME, Range, setting
from .measure import Figure, matmul_gflops, table
from .sections import data_pipeline, dense_vs_multicrop, inference, training_step

TORCHVISION = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
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

    def check(self) -> None:
        """Refuse, in a sentence, an architecture torchvision has no VGG for, and an image folder that is a file."""
        from ..base.configs import canonical_name, resolve

        known = ", ".join(TORCHVISION)
        try:
            self.arch = canonical_name(*resolve(self.arch))
        except ValueError:
            raise ValueError(f"--arch {self.arch} is not a VGG; bench compares with torchvision's: {known}") from None
        if self.arch not in TORCHVISION:
            raise ValueError(f"--arch {self.arch}: torchvision has no such VGG to compare with; give one of {known}")
        if self.out and Path(self.out).is_dir():
            raise ValueError(f"--out {self.out} is a folder; give the Markdown file to write the table to")
        if Path(self.images).exists() and not Path(self.images).is_dir():
            raise ValueError(f"--images {self.images} is a file; give a folder of JPEGs (made if empty or missing)")


def run_bench(args: BenchSettings) -> str:
    """``vggnet bench``: the sections ``args.only`` names, each printed as it is measured, then the whole table."""
    from ..base.hardware import cpu_has_bf16, cpu_name

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
            from .engines import engines_table, run_engines

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
