"""The GPU check (run it through gpu_check.sh): model tests on the device, VGG16 training and inference throughput
against torchvision under the same settings, model-FLOPs utilisation, and a full Fashion-MNIST training.

Its last lines are a table of figures. ``--device cpu --tiny`` runs every step end to end on small settings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet import bench  # noqa: E402
from vggnet.recipe import TrainConfig, load_recipe  # noqa: E402
from vggnet.train import train  # noqa: E402


def run_tests(device: str, tiny: bool) -> tuple[str, float]:
    files = ["tests/test_device.py"] + ([] if tiny else ["tests/test_model.py"])
    env = {**os.environ, "VGGNET_TEST_DEVICE": device, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    summary = next(
        (line for line in reversed(proc.stdout.splitlines()) if " passed" in line or " failed" in line),
        f"pytest exit {proc.returncode}",
    )
    return summary.strip("= "), time.time() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="small settings: a dry run on the CPU")
    p.add_argument("--data", default=str(ROOT / ".data" / "fashion-mnist"), help="folder of Fashion-MNIST idx files")
    p.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "runs" / "gpu_check")))
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--skip", nargs="*", default=[], choices=["tests", "train", "inference", "fashion"])
    args = p.parse_args()
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arch, train_batch, infer_batch, repeats = ("vgg11", 2, 2, 2) if args.tiny else ("vgg16", 256, 256, 5)
    compile = not args.no_compile and not args.tiny
    rows: list[tuple[str, str]] = []
    started = time.time()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True
    else:
        name = "CPU"
    print(f"gpu_check on {name}, torch {torch.__version__}", flush=True)

    if "tests" not in args.skip:
        summary, seconds = run_tests(args.device, args.tiny)
        rows.append(("model tests on " + args.device, f"{summary} ({seconds:.0f} s)"))

    bf16_rate = bench.matmul_gflops(device, torch.bfloat16, n=8192 if device.type == "cuda" else 1024)
    fp32_rate = bench.matmul_gflops(device, torch.float32, n=8192 if device.type == "cuda" else 1024)
    rows.append(("matmul rate bf16 / fp32", f"{bf16_rate / 1000:.1f} / {fp32_rate / 1000:.1f} TFLOP/s"))
    figures = []

    if "train" not in args.skip:
        t0 = time.time()
        figs = bench.training_step(arch, train_batch, device, repeats, amp=True, compile=compile, same_settings=True)
        figures += figs
        for f in figs:
            rows.append(
                (
                    f.name,
                    f"{f.images_per_s:.4g} img/s, MFU {100 * f.gflops / bf16_rate:.1f}%, "
                    f"{f.peak_mib:.0f} MiB ({f.images_per_s / figs[0].images_per_s:.2f}x)",
                )
            )
        print(bench.table([("train", figs)], bf16_rate), f"\n({time.time() - t0:.0f} s)", flush=True)

    if "inference" not in args.skip:
        t0 = time.time()
        figs = bench.inference(arch, infer_batch, device, repeats, compile=False, amp=True)
        figures += figs
        for f in figs:
            rows.append((f.name, f"{f.images_per_s:.4g} img/s ({f.images_per_s / figs[0].images_per_s:.2f}x)"))
        print(bench.table([("inference", figs)], bf16_rate), f"\n({time.time() - t0:.0f} s)", flush=True)

    if "fashion" not in args.skip:
        recipe = load_recipe("fashion_mnist_gpu")
        recipe.update(
            data=args.data if Path(args.data).is_dir() else None,
            out=str(out / "fashion_mnist"),
            device=args.device,
            progress=False,
            tensorboard=False,
        )
        if args.tiny:
            recipe.update(width=0.125, fc_width=64, epochs=1, subset=2000)
        t0 = time.time()
        result = train(TrainConfig(**recipe))
        seconds = time.time() - t0
        final = 100 * (1 - result.val_top1_err)
        best = 100 * result.best_val_acc
        rows.append(
            (
                f"Fashion-MNIST {recipe['arch']} x{recipe['width']}, {len(result.history)} epochs",
                f"test accuracy {final:.2f}% (best {best:.2f}%), {seconds:.0f} s wall-clock",
            )
        )

    (out / "gpu_check.json").write_text(
        json.dumps(
            {"device": name, "torch": torch.__version__, "rows": rows, "figures": [f.__dict__ for f in figures]},
            indent=1,
        )
    )
    print(f"\n## gpu_check: {name}, torch {torch.__version__}, {time.time() - started:.0f} s in all\n")
    print("| measurement | figure |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
