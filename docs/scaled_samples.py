"""A picture of the scaled Fashion-MNIST (``--dataset fashion-mnist-scaled``): the first training images of each
class, as stored (64 x 64), and as the reproduction's nets see them at the three training scales.

    python docs/scaled_samples.py      # writes docs/scaled_fashion_mnist.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.data.fashion_mnist import load_fashion_mnist, load_scaled_fashion_mnist  # noqa: E402


def main(out: Path = ROOT / "docs" / "scaled_fashion_mnist.png") -> Path:
    plain, scaled = load_fashion_mnist(split="train"), load_scaled_fashion_mnist(split="train")
    per_class = [torch.nonzero(scaled.labels == c)[:6, 0] for c in range(len(scaled.classes))]
    fig, axes = plt.subplots(len(per_class), 7, figsize=(7 * 1.3, len(per_class) * 1.3))
    for row, picks in enumerate(per_class):
        axes[row, 0].imshow(plain.originals[picks[0], 0], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(scaled.classes[row], fontsize=7, rotation=0, ha="right", va="center")
        for col, i in enumerate(picks.tolist(), 1):
            axes[row, col].imshow(scaled.images[i, 0], cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("Fashion-MNIST\n28 x 28", fontsize=7)
    for col in range(1, 7):
        axes[0, col].set_title("scaled, 64 x 64", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "fashion-mnist-scaled: each garment rescaled by a log-uniform factor in [0.5, 2], placed at random", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return out


if __name__ == "__main__":
    print(main())
