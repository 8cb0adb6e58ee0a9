"""The report of a reproduction (:mod:`vggnet.reproduce`): the paper's Tables 3-6 beside ours, each of its
conclusions with a verdict, and a figure.

Every number comes from the soft-max posteriors each run saved: protocols, test scales and ensembles combine by
averaging posteriors, as in the paper. A conclusion compares mean top-1 errors over seeds; a difference no larger than
the spread between seeds (the larger of the two sides' max - min) is noise, not a finding.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write, atomic_write_text
from .plan import KINDS, LETTERS, Geometry, RunSpec, Settings, iter_evaluated

# The paper's ILSVRC-2012 validation errors (top-1, top-5 %), from PAPER.md.
PAPER_TABLE3 = {
    ("A", "256"): (29.6, 10.4), ("A-LRN", "256"): (29.7, 10.5), ("B", "256"): (28.7, 9.9),
    ("C", "256"): (28.1, 9.4), ("C", "384"): (28.1, 9.3), ("C", "jitter"): (27.3, 8.8),
    ("D", "256"): (27.0, 8.8), ("D", "384"): (26.8, 8.7), ("D", "jitter"): (25.6, 8.1),
    ("E", "256"): (27.3, 9.0), ("E", "384"): (26.9, 8.7), ("E", "jitter"): (25.5, 8.0),
}  # fmt: skip
PAPER_TABLE4 = {("D", "jitter"): (24.8, 7.5), ("E", "jitter"): (24.8, 7.5)}
PAPER_TABLE5 = {
    ("D", "jitter"): {"dense": (24.8, 7.5), "multicrop": (24.6, 7.5), "dense+multicrop": (24.4, 7.2)},
    ("E", "jitter"): {"dense": (24.8, 7.5), "multicrop": (24.6, 7.4), "dense+multicrop": (24.4, 7.1)},
}
PAPER_TABLE6 = {"D+E, multi-crop & dense": (23.7, 6.8)}
KIND_LABEL = {"256": "S=256", "384": "S=384", "jitter": "S∈[256,512]"}
PROTOCOL_LABEL = {"dense@1": "dense, single Q", "center@1": "centre crop, single Q", "dense": "dense, multi-Q",
                  "center": "centre crop, multi-Q", "multicrop": "multi-crop, multi-Q",
                  "dense+multicrop": "multi-crop & dense, multi-Q"}  # fmt: skip
# The two ways every net is tested: the paper's dense net, and the centre crop (the training crop's own geometry).
FAMILIES = {"center": "centre crop", "dense": "dense (the paper's)"}


# -- verdicts -------------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    claim: str
    verdict: str  # "holds", "does not hold" or "within noise"
    detail: str


def spread(values: Sequence[float]) -> float | None:
    """max - min over seeds; None for a single seed (no estimate of the noise)."""
    return max(values) - min(values) if len(values) > 1 else None


def judge(claim: str, a: Sequence[float], b: Sequence[float], relation: str = "lower") -> Verdict:
    """The verdict on a paper's finding about top-1 errors ``a`` and ``b`` (one per seed).

    ``relation="lower"``: the paper found ``a`` below ``b`` (depth helps, jittering helps ...). ``"not_lower"``: it
    found ``a`` not below ``b`` (LRN does not help). A difference of the means no larger than the seeds' spread is
    "within noise"; for a "not_lower" finding that agrees with the paper (no difference). With one seed there is no
    noise estimate and the sign decides, which the detail says.
    """
    if relation not in ("lower", "not_lower"):
        raise ValueError(f"unknown relation {relation!r}")
    if not a or not b:
        return Verdict(claim, "not measured", "a run it needs did not finish")
    ma, mb = statistics.mean(a), statistics.mean(b)
    diff = mb - ma  # > 0: a has the lower error
    spreads = [s for s in (spread(a), spread(b)) if s is not None]
    noise = max(spreads) if len(spreads) == 2 else None
    where = f"{ma:.2f} vs {mb:.2f} % top-1 error (difference {abs(diff):.2f}"
    if noise is None:
        where += ", one seed: no noise estimate)"
    else:
        where += f", seeds' spread {noise:.2f})"
    if diff == 0 or (noise is not None and abs(diff) <= noise):
        agrees = " — as the paper found, no difference" if relation == "not_lower" else ""
        return Verdict(claim, "within noise", where + agrees)
    lower = diff > 0
    holds = lower if relation == "lower" else not lower
    return Verdict(claim, "holds" if holds else "does not hold", where)


# -- cells ----------------------------------------------------------------------------------------------------------
def errors(p: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 error (%) of posteriors N x K."""
    top = p.topk(min(5, p.shape[1]), 1).indices
    hit = top == labels[:, None]
    return 100 * (1 - hit[:, 0].float().mean().item()), 100 * (1 - hit.any(1).float().mean().item())


def keys_for(spec: RunSpec, protocol: str) -> list[str]:
    """The posteriors a protocol averages: ``dense@1`` / ``center@1`` (at the single Q), or ``dense``, ``center``,
    ``multicrop``, ``dense+multicrop`` at the multi-scale Qs."""
    if protocol.endswith("@1"):
        return [f"{protocol[:-2]}@{spec.q_single}"]
    return [f"{m}@{q}" for m in protocol.split("+") for q in spec.q_multi]


@dataclass
class Cell:
    top1: list[float]  # one per seed
    top5: list[float]

    def show(self) -> str:
        if not self.top1:
            return "—"
        m1, m5 = statistics.mean(self.top1), statistics.mean(self.top5)
        text = f"{m1:.2f} / {m5:.2f}"
        return text + (f" (top-1 {min(self.top1):.2f}–{max(self.top1):.2f})" if len(self.top1) > 1 else "")


class Results:
    """The posteriors of every evaluated run, by model (``D_384``) and seed."""

    def __init__(self, settings: Settings, runs: list[RunSpec]) -> None:
        self.settings = settings
        self.by_model: dict[str, list[tuple[RunSpec, dict[str, torch.Tensor]]]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        for spec, found in iter_evaluated(settings, runs):
            self.by_model.setdefault(spec.model, []).append((spec, found["tensors"]))
            self.meta[spec.name] = found["meta"]
        self.runs = runs

    def posteriors(self, model: str, protocol: str) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """(seed, averaged posteriors, labels) of each seed's run of ``model`` that has the protocol."""
        out = []
        for spec, tensors in self.by_model.get(model, []):
            keys = keys_for(spec, protocol)
            if all(k in tensors for k in keys):
                out.append((spec.seed, sum(tensors[k] for k in keys) / len(keys), tensors["labels"]))
        return out

    def cell(self, model: str, protocol: str) -> Cell:
        scores = [errors(p, y) for _, p, y in self.posteriors(model, protocol)]
        return Cell([s[0] for s in scores], [s[1] for s in scores])

    def ensemble(self, models: Sequence[str], protocol: str) -> Cell:
        """Posteriors of the models averaged, seed by seed (seeds where all of them ran)."""
        per = [{seed: (p, y) for seed, p, y in self.posteriors(m, protocol)} for m in models]
        seeds = sorted(set.intersection(*(set(d) for d in per))) if per else []
        scores = [errors(sum(d[s][0] for d in per) / len(per), per[0][s][1]) for s in seeds]
        return Cell([s[0] for s in scores], [s[1] for s in scores])


# -- tables and conclusions ---------------------------------------------------------------------------------------
def paper_cell(value: tuple[float, float] | None) -> str:
    return f"{value[0]} / {value[1]}" if value else "—"


def here_label(kind: str, geo: Geometry) -> str:
    """A training scale in the miniature's pixels: ``S=32``, ``S∈[32,64]``."""
    s = geo.scale(kind)
    return f"S∈[{s[0]},{s[1]}]" if len(s) > 1 else f"S={s[0]}"


def table3(results: Results) -> list[str]:
    geo = Geometry(results.settings.crop)
    heads = [f"paper {KIND_LABEL[k]} | here {here_label(k, geo)}, dense | centre crop" for k in KINDS]
    lines = ["| config | " + " | ".join(heads) + " |", "|---|" + "---|---|---|" * len(KINDS)]
    for letter in LETTERS:
        cells = []
        for kind in KINDS:
            model = f"{letter}_{kind}"
            cells += [paper_cell(PAPER_TABLE3.get((letter, kind))), results.cell(model, "dense@1").show(),
                      results.cell(model, "center@1").show()]  # fmt: skip
        lines.append(f"| {letter} | " + " | ".join(cells) + " |")
    return lines


def table4(results: Results) -> list[str]:
    geo = Geometry(results.settings.crop)
    lines = [
        "| config | train S, paper (here) | paper, dense 3 Q | dense, 1 Q | dense, 3 Q | centre, 1 Q | centre, 3 Q |",
        "|---|---|---|---|---|---|---|",
    ]
    for letter in ("B", "C", "D", "E"):
        for kind in KINDS:
            model = f"{letter}_{kind}"
            if model not in results.by_model:
                continue
            paper = paper_cell(PAPER_TABLE4.get((letter, kind)))
            cells = " | ".join(results.cell(model, p).show() for p in ("dense@1", "dense", "center@1", "center"))
            lines.append(f"| {letter} | {KIND_LABEL[kind]} ({here_label(kind, geo)}) | {paper} | {cells} |")
    return lines


def table5(results: Results) -> list[str]:
    protocols = ("dense", "multicrop", "dense+multicrop")
    lines = ["| config | " + " | ".join(f"paper {PROTOCOL_LABEL[p]} | here {PROTOCOL_LABEL[p]}" for p in protocols)
             + " |", "|---|" + "---|---|" * len(protocols)]  # fmt: skip
    for letter in ("D", "E"):
        paper = PAPER_TABLE5.get((letter, "jitter"), {})
        cells = []
        for p in protocols:
            cells += [paper_cell(paper.get(p)), results.cell(f"{letter}_jitter", p).show()]
        lines.append(f"| {letter}, {KIND_LABEL['jitter']} | " + " | ".join(cells) + " |")
    return lines


def best_pair(results: Results) -> tuple[list[str], str]:
    """The two nets with the lowest mean top-1 error under the best protocol each has (multi-crop where it was run,
    else multi-scale centre crops), and the protocol both have."""

    def best(model: str) -> float:
        errors = [statistics.mean(c.top1) for p in ("multicrop", "center") if (c := results.cell(model, p)).top1]
        return min(errors, default=float("inf"))

    ranked = sorted((best(m), m) for m in results.by_model if m.split("_")[0] in ("B", "C", "D", "E"))
    pair = [m for e, m in ranked[:2] if e < float("inf")]
    both = len(pair) == 2 and all(results.cell(m, "multicrop").top1 for m in pair)
    return pair, "multicrop" if both else "center"


def table6(results: Results) -> tuple[list[str], list[str], str]:
    pair, protocol = best_pair(results)
    lines = ["| models | protocol | here | paper (D/S∈[256,512] + E/S∈[256,512], multi-crop & dense) |",
             "|---|---|---|---|"]  # fmt: skip
    if len(pair) < 2:
        return lines + ["| (fewer than two nets evaluated) | | | |"], pair, protocol
    for m in pair:
        lines.append(f"| {label(m)} | {PROTOCOL_LABEL[protocol]} | {results.cell(m, protocol).show()} | |")
    ens = results.ensemble(pair, protocol)
    paper = PAPER_TABLE6["D+E, multi-crop & dense"]
    lines.append(f"| ensemble {label(pair[0])} + {label(pair[1])} | {PROTOCOL_LABEL[protocol]} | {ens.show()} | "
                 f"{paper_cell(paper)} |")  # fmt: skip
    return lines, pair, protocol


def label(model: str) -> str:
    letter, kind = model.rsplit("_", 1)
    return f"{letter}/{KIND_LABEL[kind]}"


def network_findings(results: Results, family: str) -> list[Verdict]:
    """The paper's findings about its nets and their training (Sect. 4.1-4.2), judged under one test protocol:
    ``dense`` (the paper's) or ``center`` (the centre crop, the training crop's own geometry)."""

    def t(model: str, scales: str = "@1") -> list[float]:
        return results.cell(model, family + scales).top1

    found = [
        judge("LRN does not improve net A (A-LRN no better than A)", t("A-LRN_256"), t("A_256"), "not_lower"),
        judge("depth helps: B (13 layers) beats A (11)", t("B_256"), t("A_256")),
        judge("extra non-linearity helps: C (1x1 convolutions added) beats B", t("C_256"), t("B_256")),
        judge("3x3 beats 1x1 at equal depth: D beats C", t("D_256"), t("C_256")),
        judge("depth saturates at 19 layers: E no better than D", t("E_256"), t("D_256"), "not_lower"),
    ]
    for letter in ("C", "D", "E"):
        fixed = [m for m in (f"{letter}_256", f"{letter}_384") if t(m)]
        best = min(fixed, key=lambda m: statistics.mean(t(m)), default=f"{letter}_256")
        found.append(judge(f"scale jittering helps: {letter}/S∈[256,512] beats the better fixed S ({label(best)})",
                           t(f"{letter}_jitter"), t(best)))  # fmt: skip
    for letter in ("D", "E"):
        m = f"{letter}_jitter"
        found.append(judge(f"multi-scale testing helps: {label(m)} at three Q beats one Q", t(m, ""), t(m)))
    return found


def testing_findings(results: Results) -> list[Verdict]:
    """The paper's findings about testing (Sect. 4.3-4.4): multi-crop against dense, both together, an ensemble."""
    found = []
    for letter in ("D", "E"):
        m = f"{letter}_jitter"
        dense, crops = results.cell(m, "dense").top1, results.cell(m, "multicrop").top1
        both = results.cell(m, "dense+multicrop").top1
        found.append(judge(f"multi-crop is slightly better than dense ({label(m)})", crops, dense))
        found.append(judge(f"multi-crop & dense together beat each alone ({label(m)})", both,
                           min((dense, crops), key=lambda v: statistics.mean(v) if v else 1e9)))  # fmt: skip
    pair, protocol = best_pair(results)
    if len(pair) == 2:
        ens = results.ensemble(pair, protocol).top1
        best = min((results.cell(m, protocol).top1 for m in pair), key=statistics.mean)
        found.append(judge(f"an ensemble of the two best nets ({label(pair[0])} + {label(pair[1])}, "
                           f"{PROTOCOL_LABEL[protocol]}) beats the better one", ens, best))  # fmt: skip
    return found


def conclusions(results: Results) -> dict[str, list[Verdict]]:
    """Every finding judged: the nets' under each test protocol, testing's under its own."""
    found: dict[str, list[Verdict]] = {family: network_findings(results, family) for family in FAMILIES}
    found["testing"] = testing_findings(results)
    return found


def conclusion_lines(found: dict[str, list[Verdict]]) -> list[str]:
    lines = ["| finding | " + " | ".join(f"verdict, {v}" for v in FAMILIES.values()) + " | evidence (centre; dense) |",
             "|---|" + "---|" * len(FAMILIES) + "---|"]  # fmt: skip
    for row in zip(*(found[f] for f in FAMILIES)):
        verdicts = " | ".join(f"**{v.verdict}**" for v in row)
        lines.append(f"| {row[0].claim} | {verdicts} | {'; '.join(v.detail for v in row)} |")
    lines += ["", "| finding about testing | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {v.claim} | **{v.verdict}** | {v.detail} |" for v in found["testing"]]
    return lines


# -- the report -----------------------------------------------------------------------------------------------------
def geometry_lines(settings: Settings) -> list[str]:
    geo = Geometry(settings.crop)
    rows = [("crop", settings.crop, 224), ("small S", geo.px(256), 256), ("large S", geo.px(384), 384),
            ("jittered S", f"[{geo.px(256)}, {geo.px(512)}]", "[256, 512]"),
            ("Q for the small S", ", ".join(map(str, geo.q_multi("256"))), "224, 256, 288"),
            ("Q for the large S", ", ".join(map(str, geo.q_multi("384"))), "352, 384, 416"),
            ("Q for jittered S", ", ".join(map(str, geo.q_multi("jitter"))), "256, 384, 512")]  # fmt: skip
    lines = ["| | here (pixels) | paper (pixels) |", "|---|---|---|"]
    return lines + [f"| {name} | {here} | {paper} |" for name, here, paper in rows]


def build_report(settings: Settings, runs: list[RunSpec]) -> tuple[str, dict[str, Any], Results]:
    results = Results(settings, runs)
    t6, pair, protocol = table6(results)
    verdicts = conclusions(results)
    done = sum(len(v) for v in results.by_model.values())
    train_s = sum(m.get("train_seconds", 0.0) for m in results.meta.values())
    proc = "with batch normalisation, every net from scratch" if settings.batch_norm else (
        "the paper's procedure: no batch normalisation, net A from random initialisation, B-E from net A, large S "
        "from small S, jittered S from large S")  # fmt: skip
    # With BN every run starts from scratch for the full length; only the paper's procedure has fine-tuning stages.
    epochs = f"{settings.epochs} epochs" + (
        "" if settings.batch_norm else f" (fine-tuning stages {settings.stage_epochs})"
    )
    md = [
        f"# The paper's Tables 3-6 in miniature ({'BN' if settings.batch_norm else 'no BN'})",
        "",
        f"{done} of {len(runs)} runs evaluated, {settings.seeds} seed(s), {proc}. Width x{settings.width:g}, fc "
        f"{settings.head_width}, {epochs}, batch "
        f"{settings.batch_size}, pools rounded up (Caffe's). Training took {train_s / 60:.0f} min in all. Errors are "
        "top-1 / top-5 (%), the mean over seeds, with the seeds' range of top-1 in brackets; the paper's are on "
        "ILSVRC-2012 validation. Scales in miniature:",
        "",
        *geometry_lines(settings),
        "",
        "## Table 3: single test scale (dense evaluation, Q = S, or the middle of jittered S)",
        "",
        *table3(results),
        "",
        "## Table 4: multi-scale testing (dense, posteriors averaged over three Q)",
        "",
        *table4(results),
        "",
        "## Table 5: dense, multi-crop (5 x 5 grid x 2 flips per Q), and both",
        "",
        *table5(results),
        "",
        "## Table 6: an ensemble of the two best nets (posteriors averaged)",
        "",
        *t6,
        "",
        "## The paper's conclusions, here",
        "",
        "Each finding about the nets is judged twice: on the centre crop (the training crop's geometry at the test",
        "scale) and on the paper's dense evaluation; those about testing on the protocols they compare.",
        "",
        *conclusion_lines(verdicts),
        "",
        "![error by configuration and protocol](reproduce.png)",
        "",
    ]
    data = {
        "settings": {k: getattr(settings, k) for k in Settings.__dataclass_fields__},
        "runs": {s.name: {"evaluated": s.name in results.meta, **results.meta.get(s.name, {})} for s in runs},
        "cells": {m: {p: asdict(results.cell(m, p)) for p in PROTOCOL_LABEL} for m in sorted(results.by_model)},
        "ensemble": {"models": pair, "protocol": protocol, **asdict(results.ensemble(pair, protocol))} if pair else {},
        "conclusions": {k: [asdict(v) for v in vs] for k, vs in verdicts.items()},
        "paper": {"table3": {f"{k[0]}_{k[1]}": v for k, v in PAPER_TABLE3.items()}},
    }
    return "\n".join(md), data, results


def write_report(settings: Settings, runs: list[RunSpec]) -> list[Path]:
    """``reproduce.md``, ``reproduce.json`` and ``reproduce.png`` in the reproduction's folder."""
    md, data, results = build_report(settings, runs)
    out = Path(settings.out)
    paths = [atomic_write_text(out / "reproduce.md", md), atomic_write_text(out / "reproduce.json",
                                                                            json.dumps(data, indent=1))]  # fmt: skip
    paths.append(plot(results, out / "reproduce.png"))
    return paths


def plot(results: Results, path: Path) -> Path:
    """Top-1 error by net and protocol, error bars the seeds' range; the paper's beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [f"{letter}_{kind}" for kind in KINDS for letter in LETTERS if f"{letter}_{kind}" in results.by_model]
    series = [("dense@1", "o"), ("center@1", "v"), ("dense", "s"), ("center", "P"), ("multicrop", "^"),
              ("dense+multicrop", "D")]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(15, 5), gridspec_kw={"width_ratios": [3, 2]})
    for offset, (protocol, marker) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(models):
            c = results.cell(m, protocol)
            if c.top1:
                mean = statistics.mean(c.top1)
                xs.append(i + (offset - 2.5) * 0.12)
                ys.append(mean)
                lo.append(mean - min(c.top1))
                hi.append(max(c.top1) - mean)
        if xs:
            axes[0].errorbar(xs, ys, yerr=[lo, hi], fmt=marker, capsize=3, label=PROTOCOL_LABEL[protocol])
    axes[0].set_xticks(range(len(models)), [label(m) for m in models], rotation=45, ha="right", fontsize=8)
    axes[0].set(ylabel="top-1 error (%)", title="here (seeds' range as bars)")
    order = [(letter, kind) for kind in KINDS for letter in LETTERS]  # as the nets are laid out on the left
    paper = [(label(f"{k[0]}_{k[1]}"), PAPER_TABLE3[k][0]) for k in order if k in PAPER_TABLE3]
    axes[1].plot(range(len(paper)), [v for _, v in paper], "o", label="dense, single Q (Table 3)")
    axes[1].set_xticks(range(len(paper)), [n for n, _ in paper], rotation=45, ha="right", fontsize=8)
    axes[1].set(ylabel="top-1 error (%)", title="paper, ILSVRC-2012")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
