"""The reproduction's figure: top-1 error of every net by protocol, the seeds' range as bars, each run labelled in its
own units (``S=32``) with the paper's beside them (``(256)``); the paper's Table 3 on the right."""

from __future__ import annotations

import statistics
from typing import Any

from .results import PAPER_TABLE3, PROTOCOL_LABEL, Results

SERIES = (
    ("center@1", "v"),
    ("center", "P"),
    ("multicrop@1", "D"),
    ("multicrop", "^"),
    ("dense@1", "o"),
    ("dense", "s"),
)


def plot(results: Results, path: Any) -> None:
    """Write the figure as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5), gridspec_kw={"width_ratios": [2, 2, 2]})
    groups = [[m for m in results.models if results.specs(m)[0].group == g] for g in ("nets", "scales")]
    titles = [f"nets at the small S ({results.settings.main_data})", f"training scales ({results.settings.scale_data})"]
    for ax, models, title in zip(axes, groups, titles):
        draw_group(ax, results, models)
        ax.set(ylabel="top-1 test error (%)", title=f"here: {title}; bars: the seeds' range")
    order = [k for k in PAPER_TABLE3]
    axes[2].plot(range(len(order)), [PAPER_TABLE3[k][0] for k in order], "o", label="dense, single Q (Table 3)")
    axes[2].set_xticks(range(len(order)), [k.replace("_", "/S=") for k in order], rotation=45, ha="right", fontsize=8)
    axes[2].set(ylabel="top-1 error (%)", title="paper, ILSVRC-2012")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def draw_group(ax: Any, results: Results, models: list[str]) -> None:
    for offset, (protocol, marker) in enumerate(SERIES):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(models):
            if "dense" in protocol and results.dense_breaks(m):
                continue
            c = results.cell(m, protocol)
            if c.top1:
                mean = statistics.mean(c.top1)
                xs.append(i + (offset - 2.5) * 0.1)
                ys.append(mean)
                lo.append(mean - min(c.top1))
                hi.append(max(c.top1) - mean)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, capsize=3, label=PROTOCOL_LABEL[protocol])
    labels = [
        f"{s.letter}/{results.geometry.label(s.kind)}{', from scratch' if m.endswith('_scratch') else ''}"
        for m, s in ((m, results.specs(m)[0]) for m in models)
    ]  # the deep nets trained from random weights beside those started from net A
    ax.set_xticks(range(len(models)), labels, rotation=45, ha="right", fontsize=8)
