"""The GPU check (run it through gpu_check.sh): model tests on the device, VGG16 training and inference throughput
against torchvision under the same settings, model-FLOPs utilisation, the image pipeline (CPU workers against
decoding and augmenting on the GPU) and a VGG16 training fed from a JPEG folder, a full Fashion-MNIST training,
and the paper's Table 3 in miniature.

Its last lines are a table of figures. ``--device cpu --tiny`` runs every step end to end on small settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.base.timing import synchronize  # noqa: E402
from vggnet.bench import measure, sections  # noqa: E402
from vggnet.training.loop import train  # noqa: E402
from vggnet.training.settings import TrainConfig, load_recipe  # noqa: E402

STEPS = ("tests", "train", "inference", "pipeline", "fashion", "table3")


def run_tests(args: argparse.Namespace) -> list[tuple[str, str]]:
    files = ["tests/test_device.py"] + ([] if args.tiny else ["tests/test_model.py"])
    env = {**os.environ, "VGGNET_TEST_DEVICE": args.device, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *files], cwd=ROOT, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    summary = next(
        (line for line in reversed(proc.stdout.splitlines()) if " passed" in line or " failed" in line),
        f"pytest exit {proc.returncode}",
    )
    return [("model tests on " + args.device, f"{summary.strip('= ')} ({time.time() - t0:.0f} s)")]


def run_train(args: argparse.Namespace, rates: dict[str, float]) -> list[tuple[str, str]]:
    arch, batch, repeats = ("vgg11", 2, 2) if args.tiny else ("vgg16", 256, 5)
    compile = not args.no_compile and not args.tiny
    figs = sections.training_step(
        arch, batch, args.torch_device, repeats, amp=True, compile=compile, same_settings=True
    )
    print(measure.table([("train", figs)], rates["bf16"]), flush=True)
    return [
        (
            f.name,
            f"{f.images_per_s:.4g} img/s, MFU {100 * f.gflops / rates['bf16']:.1f}%, {f.peak_mib:.0f} MiB "
            f"({f.images_per_s / figs[0].images_per_s:.2f}x)",
        )  # fmt: skip
        for f in figs
    ]


def run_inference(args: argparse.Namespace, rates: dict[str, float]) -> list[tuple[str, str]]:
    arch, batches, repeats = ("vgg11", [1, 2], 2) if args.tiny else ("vgg16", [1, 256], 5)
    rows = []
    for batch in batches:
        figs = sections.inference(arch, batch, args.torch_device, repeats, compile=False, amp=True)
        print(measure.table([("inference", figs)], rates["bf16"]), flush=True)
        rows += [(f.name, f"{f.images_per_s:.4g} img/s ({f.images_per_s / figs[0].images_per_s:.2f}x)") for f in figs]
    return rows


def jpeg_folder(root: Path, count: int) -> Path:
    """ImageNet-sized JPEGs in two classes, made once (``--prepare`` makes them before the machine is lent)."""
    for name in ("a", "b"):
        folder = root / "train" / name
        if len(list(folder.glob("*.jpg"))) < count // 2:
            sections.make_jpegs(folder, count // 2)
    if not (root / "val").exists():
        (root / "val").symlink_to("train")
    return root


def run_pipeline(args: argparse.Namespace, rates: dict[str, float]) -> list[tuple[str, str]]:
    """Images/s of the paper's augmentation from a JPEG folder: CPU workers, and decoding on the device; then a
    VGG16 training fed by each."""
    from vggnet.data.device import DeviceImageFolder
    from vggnet.data.folders import ImageFolder
    from vggnet.data.opening import open_datasets

    count = 64 if args.tiny else 1024
    root = jpeg_folder(Path(args.jpegs), count)
    base = dict(dataset="folder", data=str(root), scale=[256, 512], crop=224, workers=min(15, os.cpu_count() - 1))
    if args.tiny:
        base.update(workers=1)
    batch = 8 if args.tiny else 256
    rows = []
    for label, folder in (("CPU workers", ImageFolder), ("decoded on the device", DeviceImageFolder)):
        data = open_datasets(TrainConfig(**base), folder=folder)
        order = list(range(len(data.train)))
        t0, seen = time.perf_counter(), 0
        for x, _, _ in data.train.batches(order, batch, epoch=0, device=args.torch_device):
            seen += len(x)
        synchronize(args.torch_device)
        rows.append(
            (f"pipeline, {label} ({base['workers']} workers)", f"{seen / (time.perf_counter() - t0):.4g} img/s")
        )
        print(rows[-1], flush=True)
    arch = "vgg11" if args.tiny else "vgg16"
    for decode in ("cpu", "gpu") if args.torch_device.type == "cuda" else ("cpu",):
        shutil.rmtree(Path(args.out) / f"folder_{decode}", ignore_errors=True)
        cfg = TrainConfig(**base, arch=arch, epochs=1, batch_size=batch, max_steps=2 if args.tiny else 8,
                          decode=decode, amp="bf16", progress=False, tensorboard=False,
                          out=str(Path(args.out) / f"folder_{decode}"), width=1 / 16 if args.tiny else 1.0)  # fmt: skip
        t0 = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - t0
        rows.append((f"{arch} training from JPEGs, --decode {decode}", f"{result.step * batch / seconds:.4g} img/s "
                     "(whole run, set-up included)"))  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def run_fashion(args: argparse.Namespace, rates: dict[str, float]) -> list[tuple[str, str]]:
    recipe = load_recipe("fashion_mnist_gpu")
    shutil.rmtree(Path(args.out) / "fashion_mnist", ignore_errors=True)
    recipe.update(data=args.data if Path(args.data).is_dir() else None, out=str(Path(args.out) / "fashion_mnist"),
                  device=args.device, progress=False, tensorboard=False)  # fmt: skip
    if args.tiny:
        recipe.update(width=0.125, fc_width=64, epochs=1, subset=2000, amp="off", warmup_epochs=0.2)
    t0 = time.time()
    result = train(TrainConfig(**recipe))
    seconds = time.time() - t0
    final, best = 100 * (1 - result.val_top1_err), 100 * result.best_val_acc
    return [
        (
            f"Fashion-MNIST {recipe['arch']} x{recipe['width']}, {len(result.history)} epochs",
            f"test accuracy {final:.2f}% (best {best:.2f}%), {seconds:.0f} s wall-clock",
        )  # fmt: skip
    ]


def run_table3(args: argparse.Namespace, rates: dict[str, float]) -> list[tuple[str, str]]:
    """The paper's Tables 3-6 in miniature with ``vggnet reproduce`` (the paper's procedure, no BN)."""
    out = Path(args.out) / "reproduce"
    command = [sys.executable, "-m", "vggnet", "reproduce", "--out", str(out), "--no-progress"]
    if args.tiny:
        command += ["--dataset", "synthetic", "--width", "0.0625", "--epochs", "1"]
        command += ["--seeds", "1", "--eval-limit", "64"]
    else:
        command += ["--device", args.device, "--width", "0.25", "--seeds", "2", "--epochs", "8"]
        command += ["--data", args.data] if Path(args.data).is_dir() else []
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    print(proc.stdout[-4000:], proc.stderr[-2000:], flush=True)
    return [
        ("Tables 3-6 in miniature", f"exit {proc.returncode}, {time.time() - t0:.0f} s; see reproduce/reproduce.md")
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="small settings: a dry run on the CPU")
    p.add_argument("--data", default=str(ROOT / ".data" / "fashion-mnist"), help="folder of Fashion-MNIST idx files")
    p.add_argument("--jpegs", default=str(ROOT / ".data" / "jpegs"), help="folder for the pipeline's JPEGs")
    p.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "runs" / "gpu_check")))
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--skip", nargs="*", default=[], choices=STEPS)
    args = p.parse_args()
    args.torch_device = torch.device(args.device)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(args.torch_device) if args.torch_device.type == "cuda" else "CPU"
    if args.torch_device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.time()
    print(f"gpu_check on {name}, torch {torch.__version__}", flush=True)
    n = 8192 if args.torch_device.type == "cuda" else 1024
    rates = {"bf16": measure.matmul_gflops(args.torch_device, torch.bfloat16, n=n),
             "fp32": measure.matmul_gflops(args.torch_device, torch.float32, n=n)}  # fmt: skip
    rows = [("matmul rate bf16 / fp32", f"{rates['bf16'] / 1000:.1f} / {rates['fp32'] / 1000:.1f} TFLOP/s")]
    steps = {"tests": lambda a, r: run_tests(a), "train": run_train, "inference": run_inference,
             "pipeline": run_pipeline, "fashion": run_fashion, "table3": run_table3}  # fmt: skip
    for step in STEPS:
        if step not in args.skip:
            t0 = time.time()
            try:
                rows += steps[step](args, rates)
            except Exception as err:  # one failing step must not cost the figures of the others
                rows.append((step, f"FAILED: {type(err).__name__}: {str(err)[:300]}"))
            print(f"[{step}: {time.time() - t0:.0f} s]", flush=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps({"device": name, "torch": torch.__version__,
                                                               "rows": rows}, indent=1))  # fmt: skip
    print(f"\n## gpu_check: {name}, torch {torch.__version__}, {time.time() - started:.0f} s in all\n")
    print("| measurement | figure |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
