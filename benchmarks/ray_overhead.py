"""Ray's overhead on one machine, as ratios: a small reproduction (synthetic data, 2 seeds of A and B: 4 runs) serial
against ``--ray local``, and ``vggnet features`` of a folder locally against ``--ray local``; each side a whole
command in a subprocess, the two taking turns. Then, from a finished reproduction's measured runs, how long its plan
takes on N nodes (``vggnet.reproduce.schedule``: one run at a time on each node, the longest chain of runs bounding
it).

    python benchmarks/ray_overhead.py [--repeats 2] [--images 200] [--folder runs/reproduce_bn]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_USAGE_STATS_ENABLED": "0",
       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # fmt: skip
PLAN = ["--dataset", "synthetic", "--width", "0.0625", "--epochs", "2", "--seeds", "2", "--scale-seeds", "0",
        "--nets", "A", "B", "--val-split", "48", "--eval-limit", "64", "--no-progress"]  # fmt: skip


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vggnet", *args], env=ENV, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"vggnet {' '.join(args[:2])} failed: {proc.stderr[-500:]}")
    return time.perf_counter() - started


def folder_of_images(root: Path, count: int) -> Path:
    import torch
    from torchvision.io import encode_png

    g = torch.Generator().manual_seed(0)
    for i in range(count):
        folder = root / "images" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        img = torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
        (folder / f"{i}.png").write_bytes(encode_png(img).numpy().tobytes())
    return root / "images"


def overhead(repeats: int, images: int) -> list[tuple[str, float, float]]:
    import vggnet

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        serial, ray = [], []
        for i in range(repeats):
            serial.append(timed(["reproduce", *PLAN, "--out", str(work / f"s{i}")]))
            ray.append(timed(["reproduce", *PLAN, "--out", str(work / f"r{i}"), "--ray", "local"]))
        rows.append(("small reproduction (4 runs)", statistics.median(serial), statistics.median(ray)))
        model = vggnet.build("vgg11_bn", width=0.25, num_classes=2, pool_size=1, fc_width=64).eval()
        meta = {"classes": '["cat", "dog"]', "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "32"}
        weights = vggnet.save_weights(model, work / "w.safetensors", metadata={**meta, "scale": "32"})
        folder = folder_of_images(work, images)
        local, ray = [], []
        for i in range(repeats):
            common = ["features", "--weights", str(weights), "--data", str(folder)]
            local.append(timed([*common, "--out", str(work / f"f{i}.safetensors")]))
            ray.append(timed([*common, "--out", str(work / f"p{i}"), "--ray", "local", "--actors", "2"]))
        rows.append((f"features of {images} images", statistics.median(local), statistics.median(ray)))
    return rows


def plan_on_nodes(folder: Path) -> list[str]:
    """The plan of a finished reproduction, its runs' measured minutes (training and evaluation), on N nodes."""
    from vggnet.reproduce.cost import folder_settings
    from vggnet.reproduce.plan import plan
    from vggnet.reproduce.record import run_entry
    from vggnet.reproduce.results import Results
    from vggnet.reproduce.schedule import schedule_lines

    settings = folder_settings(str(folder))
    runs = plan(settings)
    results = Results(settings, runs)
    entries = {r.name: run_entry(results, r) for r in runs}
    minutes = {n: ((e["train_seconds"] or 0) + e["eval_seconds"]) / 60 for n, e in entries.items()}
    total = sum(minutes.values()) / 60
    return [f"{folder}: {len(runs)} runs, {total:.1f} h of measured runs one at a time"] + schedule_lines(runs, minutes)


def main() -> None:
    import torch

    from vggnet.base.hardware import cpu_description

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--folder", type=Path, action="append", default=[])
    args = p.parse_args()
    print(f"machine: {cpu_description()}; torch {torch.__version__}")
    print("| job | serial / local (s) | --ray local (s) | Ray / serial |")
    print("|---|---|---|---|")
    for name, plain, ray in overhead(args.repeats, args.images):
        print(f"| {name} | {plain:.1f} | {ray:.1f} | {ray / plain:.2f}x |")
    for folder in args.folder:
        print("\n".join(plan_on_nodes(folder)))


if __name__ == "__main__":
    main()
