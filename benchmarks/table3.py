"""The paper's Table 3 in miniature: configurations A, A-LRN, B, C, D and E trained with one recipe on Fashion-MNIST,
our top-1 / top-5 errors beside the paper's ImageNet ones, and whether the paper's conclusions hold here: depth
helps (D, E below A), LRN does not (A-LRN no better than A), and 1x1 convolutions (C) fall behind 3x3 ones (D).

    python benchmarks/table3.py --device cuda                 # half width, 8 epochs, 2 seeds: minutes on one GPU
    python benchmarks/table3.py --tiny                        # 1/16 width, 1 epoch on 2,000 images: a CPU smoke run

Every net has batch normalisation (the paper trained A first and initialised the deeper nets from it; BN lets all
six start from scratch with the same recipe) and the compact head for 32 x 32 images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.recipe import TrainConfig, load_recipe  # noqa: E402
from vggnet.train import train  # noqa: E402

CONFIGS = {"A": "vgg11_bn", "A-LRN": "vgg11_lrn_bn", "B": "vgg13_bn", "C": "vgg16_conv1_bn", "D": "vgg16_bn",
           "E": "vgg19_bn"}  # fmt: skip
PAPER = {
    "A": (29.6, 10.4),
    "A-LRN": (29.7, 10.5),
    "B": (28.7, 9.9),
    "C": (28.1, 9.4),
    "D": (27.0, 8.8),
    "E": (27.3, 9.0),
}  # fmt: skip  (Table 3, S = 256, top-1 / top-5 error %)


def run(letter: str, seed: int, settings: dict, out: Path) -> tuple[float, float]:
    cfg = TrainConfig(**{**settings, "arch": CONFIGS[letter], "seed": seed, "out": str(out / f"{letter}_{seed}")})
    result = train(cfg)
    if result.status != "finished":
        raise SystemExit(f"{letter} seed {seed}: {result.message}")
    last = result.history[-1]
    return 100 * last["val_top1_err"], 100 * last["val_top5_err"]


def conclusions(ours: dict[str, list[float]]) -> list[str]:
    """The paper's three findings, each checked on the mean top-1 errors here."""
    mean = {k: statistics.mean(v) for k, v in ours.items()}
    checks = [
        ("depth helps: D and E below A", mean["D"] < mean["A"] and mean["E"] < mean["A"]),
        ("LRN does not help: A-LRN no better than A", mean["A-LRN"] >= mean["A"] - 0.1),
        ("1x1 convolutions fall behind 3x3: C above D", mean["C"] > mean["D"]),
    ]
    return [f"- {text}: {'holds' if ok else 'does not hold'} here" for text, ok in checks]


def table(ours: dict[str, list[float]], ours5: dict[str, list[float]], seeds: int) -> str:
    lines = [
        "| config | weight layers | paper, ImageNet S=256: top-1 / top-5 err (%) | "
        f"here, Fashion-MNIST: top-1 / top-5 err (%), mean of {seeds} |",
        "|---|---|---|---|",
    ]
    layers = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    for letter in CONFIGS:
        spread = f" ± {statistics.stdev(ours[letter]):.2f}" if len(ours[letter]) > 1 else ""
        lines.append(
            f"| {letter} | {layers[letter]} | {PAPER[letter][0]} / {PAPER[letter][1]} | "
            f"{statistics.mean(ours[letter]):.2f}{spread} / {statistics.mean(ours5[letter]):.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="1/16 width, one epoch on 2,000 images (CPU, CI)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 2, 1 with --tiny)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8; 1 with --tiny)")
    p.add_argument("--data", default=None, help="folder of Fashion-MNIST's idx files (default: Debian's or cached)")
    p.add_argument("--out", default=str(ROOT / "runs" / "table3"))
    args = p.parse_args()
    settings = {**load_recipe("fashion_mnist_gpu"), "data": args.data, "device": args.device}
    settings.update(progress=False, tensorboard=False, epochs=args.epochs, warmup_epochs=1)
    if args.tiny:
        settings.update(width=1 / 16, fc_width=32, epochs=1, subset=2000, batch_size=64, amp="off")
    seeds = args.seeds or (1 if args.tiny else 2)
    out = Path(args.out)
    ours: dict[str, list[float]] = {k: [] for k in CONFIGS}
    ours5: dict[str, list[float]] = {k: [] for k in CONFIGS}
    for seed in range(seeds):
        for letter in CONFIGS:
            top1, top5 = run(letter, seed, settings, out)
            ours[letter].append(top1)
            ours5[letter].append(top5)
            print(f"{letter} seed {seed}: top-1 err {top1:.2f}%, top-5 err {top5:.2f}%", flush=True)
    text = table(ours, ours5, seeds) + "\n\n" + "\n".join(conclusions(ours))
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table3.md").write_text(text + "\n")
    (out / "table3.json").write_text(json.dumps({"top1": ours, "top5": ours5, "settings": settings}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
