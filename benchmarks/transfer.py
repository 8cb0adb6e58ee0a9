"""Transfer on real images without ImageNet: pretrain a VGG on Fashion-MNIST classes 0-4, then learn classes 5-9 from
few labelled images per class, given as an image folder, four ways: from scratch, fine-tuned, frozen trunk with a
new head, and features + a linear SVM (the paper's Appendix B). Prints a table of test accuracy and time.

    python benchmarks/transfer.py                         # 10, 100 and 1000 labels per class, about 10 minutes here
    python benchmarks/transfer.py --labels 10 --quick     # a smoke run

Everything goes through vggnet's user-facing API on PNG folders (what a user with their own photos has).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.commands.probe import linear_probe  # noqa: E402
from vggnet.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from vggnet.data.sources import open_source  # noqa: E402
from vggnet.inference.descriptors import extract_features  # noqa: E402
from vggnet.inference.loading import load_model  # noqa: E402
from vggnet.inference.protocols import evaluate  # noqa: E402
from vggnet.training.loop import train  # noqa: E402
from vggnet.training.settings import TrainConfig  # noqa: E402

# The main job's network: VGG-11 with BN at a quarter width, compact head for 32x32 images.
MODEL = dict(arch="vgg11_bn", width=0.25, pool_size=1, fc_width=256, init="xavier", dropout=0.5)
# Gray images as RGB: no colour shift; mild scale jitter (32-36) then a 32 crop stands in for translation.
# Loading in-process: for 32x32 PNGs a worker's inter-process hand-over costs more than the decoding.
DATA = dict(dataset="folder", scale=[32, 36], crop=32, colour_shift=0.0, workers=0)
QUIET = dict(progress=False, tensorboard=False)


def write_folder(root: Path, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> Path:
    """PNG files root/<class>/<i>.png of uint8 images N x 1 x H x W."""
    for i, (img, y) in enumerate(zip(images, labels.tolist())):
        folder = root / classes[y].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:05d}.png")
    return root


def per_class(labels: torch.Tensor, wanted: list[int], count: int, skip: int = 0) -> torch.Tensor:
    """Indices of images ``skip`` .. ``skip + count`` of each wanted class (in file order)."""
    picked = [torch.nonzero(labels == k).flatten()[skip : skip + count] for k in wanted]
    return torch.cat(picked)


def make_data(work: Path, labels_per_class: list[int]) -> dict[str, Path]:
    """Folders: pretraining (classes 0-4), and for each label count the target task (classes 5-9)."""
    train_set, test_set = load_fashion_mnist(split="train"), load_fashion_mnist(split="test")
    classes = train_set.classes
    folders = {"pretrain": work / "pretrain", "test": work / "target_test"}
    if not (work / "done").exists():
        source, target = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
        pick = per_class(train_set.labels, source, 6000)
        write_folder(folders["pretrain"] / "train", train_set.images[pick], train_set.labels[pick], classes)
        pick = per_class(test_set.labels, source, 1000)
        write_folder(folders["pretrain"] / "val", test_set.images[pick], test_set.labels[pick], classes)
        pick = per_class(test_set.labels, target, 1000)
        write_folder(folders["test"], test_set.images[pick], test_set.labels[pick], classes)
        for n in labels_per_class:  # labelled images from the start of each class, validation from the end
            pick = per_class(train_set.labels, target, n)
            write_folder(work / f"target_{n}" / "train", train_set.images[pick], train_set.labels[pick], classes)
            pick = per_class(train_set.labels, target, 100, skip=5000)
            write_folder(work / f"target_{n}" / "val", train_set.images[pick], train_set.labels[pick], classes)
        (work / "done").write_text("")
    folders.update({f"target_{n}": work / f"target_{n}" for n in labels_per_class})
    return folders


def test_accuracy(weights: str, test: Path) -> float:
    """Top-1 accuracy on the target test set: the image and its mirror through the dense net at Q = 32."""
    loaded = load_model(weights)
    report = evaluate([loaded], open_source(str(test), channels=3), [[32]], ["dense"])
    return 1 - report["rows"][0]["cells"]["dense, Q=32"]["top1_err"] / 100


def schedule(n: int, quick: bool) -> dict:
    """Epochs and batch for n labelled images per class: about the same number of steps at every n."""
    images = 5 * n
    batch = min(64, max(16, images // 4))
    epochs = max(8, min(60, round(400 * batch / images))) if not quick else 2
    return dict(epochs=epochs, batch_size=batch, lr=0.1 * batch / 128)  # the pretraining rate, scaled to the batch


def run(name: str, cfg: TrainConfig, test: Path) -> dict:
    t0 = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - t0
    assert result.status == "finished", result.message
    return {"method": name, "accuracy": test_accuracy(result.weights, test), "seconds": seconds}


def probe(weights: str, folder: Path, test: Path, layer: str) -> dict:
    t0 = time.perf_counter()
    loaded = load_model(weights)
    train_f = extract_features(loaded, open_source(str(folder / "train"), channels=3), layer, [32])
    test_f = extract_features(loaded, open_source(str(test), channels=3), layer, [32])
    report = linear_probe(train_f, test_f)
    return {
        "method": f"features ({layer}) + linear SVM",
        "accuracy": report.accuracy,
        "seconds": time.perf_counter() - t0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=int, nargs="+", default=[10, 100, 1000], help="labelled images per class")
    p.add_argument("--out", default=str(ROOT / "runs" / "transfer"))
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="two epochs everywhere: a smoke run")
    args = p.parse_args()
    work = Path(args.out)
    t0 = time.perf_counter()
    folders = make_data(work, args.labels)
    print(f"image folders ready in {time.perf_counter() - t0:.0f} s", flush=True)
    common = {**MODEL, **DATA, **QUIET, "normalize": "meanstd", "schedule": "onecycle", "nesterov": True}
    pre_epochs = 1 if args.quick else args.pretrain_epochs
    pretrain = TrainConfig(**common, data=str(folders["pretrain"]), epochs=pre_epochs, batch_size=128, lr=0.1,
                           warmup_epochs=1, out=str(work / "runs" / "pretrain"))  # fmt: skip
    pre = run("pretraining on classes 0-4", pretrain, folders["pretrain"] / "val")
    weights = str(work / "runs" / "pretrain" / "model.safetensors")
    print(f"pretrained: {100 * pre['accuracy']:.2f}% on classes 0-4 in {pre['seconds']:.0f} s", flush=True)
    rows = []
    for n in args.labels:
        folder = folders[f"target_{n}"]
        plan = {**common, **schedule(n, args.quick), "data": str(folder), "warmup_epochs": 1}
        ways = {
            "from scratch": {},
            "fine-tuned (all layers, pretrained at 0.1x)": dict(weights=weights, pretrained_lr_scale=0.1),
            "frozen trunk, new head": dict(weights=weights, freeze="features"),
        }
        for name, extra in ways.items():
            cfg = TrainConfig(**{**plan, **extra}, out=str(work / "runs" / f"{n}_{name.split()[0]}"))
            rows.append({"labels": n, **run(name, cfg, folders["test"])})
            print(rows[-1], flush=True)
        for layer in ("relu7", "pool5"):
            rows.append({"labels": n, **probe(weights, folder, folders["test"], layer)})
            print(rows[-1], flush=True)
    lines = [
        f"Pretrained on classes 0-4 ({pre_epochs} epochs, 30,000 images): {100 * pre['accuracy']:.2f}% on their "
        f"test images, {pre['seconds']:.0f} s.",
        "",
        "| labelled images per class | method | test accuracy, classes 5-9 | time (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['labels']} | {r['method']} | {100 * r['accuracy']:.2f}% | {r['seconds']:.0f} |" for r in rows]
    text = "\n".join(lines)
    print("\n" + text)
    (work / "transfer.md").write_text(text + "\n")
    (work / "transfer.json").write_text(json.dumps({"pretrain": pre, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
