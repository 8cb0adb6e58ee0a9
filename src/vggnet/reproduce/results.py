"""What a reproduction's runs saved, read back: per run, split and protocol, which test images each net got wrong;
the decisions taken on the validation split; and each of the paper's findings judged (:mod:`vggnet.reproduce.stats`).

Protocols combine saved posteriors as the paper does, by averaging them: over the test scales Q (multi-scale), over
the multi-crop and dense posteriors (both together), over nets (an ensemble).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .geometry import Geometry
from .plan import RunSpec, Settings, judged_by
from .saved import SPLITS, evaluated
from .stats import Effect

# The paper's ILSVRC-2012 validation errors (top-1, top-5 %), from its Tables 3-6. Laid out by hand (fmt: skip), three
# nets to a line as the paper prints its rows.
PAPER_TABLE3 = {
    "A_256": (29.6, 10.4), "A-LRN_256": (29.7, 10.5), "B_256": (28.7, 9.9), "C_256": (28.1, 9.4),
    "C_384": (28.1, 9.3), "C_jitter": (27.3, 8.8), "D_256": (27.0, 8.8), "D_384": (26.8, 8.7),
    "D_jitter": (25.6, 8.1), "E_256": (27.3, 9.0), "E_384": (26.9, 8.7), "E_jitter": (25.5, 8.0),
}  # fmt: skip
PAPER_TABLE4 = {"D_jitter": (24.8, 7.5), "E_jitter": (24.8, 7.5)}
PAPER_TABLE5 = {
    "D_jitter": {"dense": (24.8, 7.5), "multicrop": (24.6, 7.5), "dense+multicrop": (24.4, 7.2)},
    "E_jitter": {"dense": (24.8, 7.5), "multicrop": (24.6, 7.4), "dense+multicrop": (24.4, 7.1)},
}
PAPER_TABLE6 = {"D+E, multi-crop & dense": (23.7, 6.8)}
PAPER_TABLES = {"table3": PAPER_TABLE3, "table4": PAPER_TABLE4, "table5": PAPER_TABLE5, "table6": PAPER_TABLE6}
CHANCE_MARGIN = 5.0  # points of top-1 error below chance that a run must reach to count as trained
DECIDE = "center@1"  # decisions that are not about protocols take the cheapest protocol that answers them
PROTOCOL_LABEL = {
    "center@1": "centre crop, single Q",
    "center": "centre crop, multi-Q",
    "dense@1": "dense, single Q",
    "dense": "dense, multi-Q",
    "multicrop@1": "multi-crop, single Q",
    "multicrop": "multi-crop, multi-Q",
    "dense+multicrop": "multi-crop & dense, multi-Q",
}


def keys_for(spec: RunSpec, protocol: str) -> list[str]:
    """The saved posteriors a protocol averages: ``center@1`` / ``dense@1`` at the single Q, or ``center``,
    ``dense``, ``multicrop``, ``dense+multicrop`` at the multi-scale Qs."""
    if protocol.endswith("@1"):
        return [f"{protocol[:-2]}@{spec.q_single}"]
    return [f"{m}@{q}" for m in protocol.split("+") for q in spec.q_multi]


@dataclass
class Cell:
    """Top-1 and top-5 error (%) of one model under one protocol, one entry per seed."""

    seeds: list[int]
    top1: list[float]
    top5: list[float]

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.top1) if self.top1 else None


class Results:
    """The posteriors of every evaluated run, by split, model and seed."""

    def __init__(self, settings: Settings, runs: list[RunSpec], splits: tuple[str, ...] = SPLITS) -> None:
        self.settings, self.runs, self.geometry = settings, runs, Geometry(settings.crop)
        self.saved: dict[str, dict[str, dict[str, Any]]] = {split: {} for split in SPLITS}
        for split in splits:
            for spec, found in evaluated(settings, runs, split):
                self.saved[split][spec.name] = found
        self.models = sorted({r.model for r in runs}, key=lambda m: [r.model for r in runs].index(m))
        self.cpu: str | None = None  # the CPU the runs were timed on: None, this machine

    def measured(
        self, key: tuple[str, str, str], compute: Callable[[], tuple[int, Effect | None]]
    ) -> tuple[int, Effect | None]:
        """The seeds and the effect of one finding (``key``: a, b, protocol), measured on the saved posteriors by
        ``compute``; a report read back from its JSON (:class:`~vggnet.reproduce.published.Published`) reads them
        from its record instead."""
        return compute()

    def test_images(self) -> int:
        found = next(iter(self.saved["test"].values()), None)
        return int(found["tensors"]["labels"].numel()) if found else 10_000

    def specs(self, model: str) -> list[RunSpec]:
        return [r for r in self.runs if r.model == model]

    def posteriors(self, model: str, protocol: str, split: str) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """seed -> (posteriors averaged as the protocol says, labels), for each seed's run that has them."""
        out = {}
        for spec in self.specs(model):
            found = self.saved[split].get(spec.name)
            keys = keys_for(spec, protocol)
            if found and all(k in found["tensors"] for k in keys) and self.trained(spec.name):
                tensors = found["tensors"]
                out[spec.seed] = (sum(tensors[k] for k in keys) / len(keys), tensors["labels"])
        return out

    def units(self, models: Sequence[str], protocol: str, split: str = "test") -> list[tuple[int, torch.Tensor, Any]]:
        """(seed, posteriors, labels) of one model per seed, or of an ensemble: the models' posteriors averaged,
        each member from another seed (unit k: the first model of the k-th seed, the second of the next, ...), so
        that no two members share a lineage (without BN a net's large-S and jittered stages are fine-tuned from its
        small-S one). An ensemble of m models needs m seeds."""
        per = [self.posteriors(m, protocol, split) for m in models]
        seeds = sorted(set.intersection(*(set(p) for p in per))) if per else []
        if len(seeds) < len(models):
            return []
        found = []
        for k, s in enumerate(seeds):
            members = [per[i][seeds[(k + i) % len(seeds)]][0] for i in range(len(models))]
            found.append((s, sum(members) / len(members), per[0][s][1]))
        return found

    def wrong(self, models: Sequence[str], protocol: str, split: str = "test") -> tuple[list[int], torch.Tensor]:
        """(seeds, seeds x images of 1 where wrong) of a model's posteriors, or an ensemble's (:meth:`units`)."""
        found = self.units(models, protocol, split)
        rows = [p.argmax(1) != y for _, p, y in found]
        return [s for s, _, _ in found], torch.stack(rows).float() if rows else torch.empty(0, 0)

    def cell(self, model: str, protocol: str, split: str = "test", ensemble: Sequence[str] = ()) -> Cell:
        seeds, top1, top5 = [], [], []
        for s, p, y in self.units([model, *ensemble], protocol, split):
            seeds.append(s)
            hit = p.topk(min(5, p.shape[1]), 1).indices == y[:, None]
            top1.append(100 * (1 - hit[:, 0].float().mean().item()))
            top5.append(100 * (1 - hit.any(1).float().mean().item()))
        return Cell(seeds, top1, top5)

    def history(self, run: str) -> list[dict[str, float]]:
        val = self.saved["val"].get(run)
        return val["meta"].get("history", []) if val else []

    def trained(self, run: str) -> bool:
        """Whether a run left chance: its last validation error (its own held-out images) is more than
        :data:`CHANCE_MARGIN` points below chance, and so did the run it started from. A net that never did is a
        failed run, not a measurement."""
        spec = next((r for r in self.runs if r.name == run), None)
        if spec is not None and spec.init_from and not self.trained(spec.init_from):
            return False  # fine-tuned from a net that never trained: not the paper's procedure either
        return self.left_chance(run)

    def left_chance(self, run: str) -> bool:
        """Whether the run's own last validation error is more than :data:`CHANCE_MARGIN` points below chance."""
        val = self.saved["val"].get(run)
        errors = [h["val_top1_err"] for h in self.history(run) if "val_top1_err" in h]
        if not errors:
            return val is not None  # no record to judge by: taken as it is
        classes = len(val["meta"].get("classes") or []) or 10
        return 100 * errors[-1] < 100 * (1 - 1 / classes) - CHANCE_MARGIN

    def stuck(self) -> list[str]:
        """The runs that never left chance (on their validation split), each excluded from every table and finding."""
        return [name for name in self.saved["val"] if not self.trained(name)]

    def dense_breaks(self, model: str) -> str | None:
        specs = self.specs(model)
        return self.geometry.dense_breaks(specs[0].qs) if specs else None


# -- decisions, on the validation split -------------------------------------------------------------------------------
def mean_error(results: Results, model: str, protocol: str, split: str = "val") -> float | None:
    return results.cell(model, protocol, split).mean


def decisions(results: Results) -> dict[str, Any]:
    """Every choice the report makes, taken on the validation split (each seed's held-out training images): the
    better fixed S of each scale net, and the ensemble's pair and its better member."""
    settings = results.settings
    suffix = "_scaled" if settings.separate_scale_runs else ""
    family = judged_by(settings, "scales" if settings.separate_scale_runs else "nets")
    better_s = {}
    for letter in settings.scale_nets:
        fixed = {m: mean_error(results, m, DECIDE) for m in (f"{letter}_256{suffix}", f"{letter}_384{suffix}")}
        fixed = {m: e for m, e in fixed.items() if e is not None}
        better_s[letter] = {"val_top1": fixed, "chosen": min(fixed, key=fixed.get) if fixed else None}
    candidates = {
        m: mean_error(results, m, DECIDE)
        for m in results.models
        if any(r.group == "scales" or r.kind != "256" for r in results.specs(m)) and m[0] in "CDE"
    }
    candidates = {m: e for m, e in candidates.items() if e is not None}
    pair = sorted(candidates, key=candidates.get)[:2]
    return {
        "data": f"the {settings.val_split:,} training images each seed's runs held out ({PROTOCOL_LABEL[DECIDE]})",
        "better_fixed_s": better_s,
        "ensemble": {
            "val_top1": candidates,
            "pair": pair,
            "better": pair[0] if pair else None,
            "protocol": f"{family}@1",
            "members": "each from another seed: unit k averages the better net of the k-th seed and the other of the "
            "next, so that the two never share a lineage",
        },
        "plateau": "each run's own validation split, every epoch",
    }
