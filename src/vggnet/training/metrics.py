"""What a person sees of a run: CSV, TensorBoard, a PNG of the training curves, and a word when it sits at chance."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from ..base.files import atomic_write, atomic_write_text

COLUMNS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1_err",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "images_per_s",
    "seconds",
]


def write_csv(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buf.getvalue())


def plot_curves(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Loss, top-1/top-5 error and learning rate against epochs, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(ax: Any, key: str, scale: float = 1.0, **style: Any) -> None:
        # Epochs without a validation (``val_every``) have no val_* values: plot the epochs that do.
        points = [(h["epoch"], scale * h[key]) for h in history if key in h]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", **style)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    curve(axes[0], "train_loss", label="train")
    curve(axes[0], "val_loss", label="validation")
    axes[0].set(title="loss", xlabel="epoch")
    curve(axes[1], "train_top1_err", 100, label="train top-1")
    curve(axes[1], "val_top1_err", 100, label="validation top-1")
    curve(axes[1], "val_top5_err", 100, label="validation top-5")
    axes[1].set(title="error (%)", xlabel="epoch")
    curve(axes[2], "lr")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return Path(path)


class TensorBoard:
    """Scalars to TensorBoard event files under ``folder`` (nothing when disabled)."""

    def __init__(self, folder: str | os.PathLike, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# An epoch is at chance when its mean loss is within 2 % of ln C or above it, and its accuracy within a tenth of
# the way from chance (1 / C) to perfect.
CHANCE_TOLERANCE = 0.02


def stuck_at_chance(history: list[dict[str, float]], classes: int, epochs: int) -> str | None:
    """The sentence to say, once, when training has sat at chance (a loss of ln C, what a net that predicts
    nothing scores, and an accuracy near 1 / C) for the last few epochs (3, or 2 in a run of 5 epochs or fewer): on
    the epoch that makes it so, not again after it."""
    needed = 2 if epochs <= 5 else 3
    if classes < 2 or len(history) < needed:
        return None
    chance = math.log(classes)
    flat = [
        h["train_loss"] >= chance * (1 - CHANCE_TOLERANCE) and h["train_top1_err"] >= 0.9 * (1 - 1 / classes)
        for h in history
    ]
    if not all(flat[-needed:]) or (len(flat) > needed and flat[-needed - 1]):
        return None
    return (
        f"the training loss has stayed at chance (ln {classes} = {chance:.3f}) for {needed} epochs: the net is not "
        "learning. Likely causes: the learning rate (--lr too high or too low), the initialisation (--init; the "
        "paper's N(0, 0.01) starves a narrow net of signal), the input's normalisation (--normalize), or labels that "
        "do not follow the images"
    )
