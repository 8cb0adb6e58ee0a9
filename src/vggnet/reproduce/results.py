"""What a reproduction's runs saved, read back: per run, split and protocol, which test images each net got wrong;
the decisions taken on the validation split; and each of the paper's findings judged (:mod:`vggnet.reproduce.stats`).

Protocols combine saved posteriors as the paper does, by averaging them: over the test scales Q (multi-scale), over
the multi-crop and dense posteriors (both together), over nets (an ensemble).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .plan import Geometry, RunSpec, Settings, judged_by
from .runs import SPLITS, evaluated
from .stats import NOT_TESTABLE, Effect, between_nets, between_protocols, verdict

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
CHANCE_MARGIN = 5.0  # points of top-1 error below chance that a run must reach to count as trained
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

    def __init__(self, settings: Settings, runs: list[RunSpec]) -> None:
        self.settings, self.runs, self.geometry = settings, runs, Geometry(settings.crop)
        self.saved: dict[str, dict[str, dict[str, Any]]] = {split: {} for split in SPLITS}
        for split in SPLITS:
            for spec, found in evaluated(settings, runs, split):
                self.saved[split][spec.name] = found
        self.models = sorted({r.model for r in runs}, key=lambda m: [r.model for r in runs].index(m))

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

    def wrong(self, models: Sequence[str], protocol: str, split: str = "test") -> tuple[list[int], torch.Tensor]:
        """(seeds, seeds x images of 1 where wrong) of the models' posteriors averaged (one model, or an ensemble),
        over the seeds where every model has the protocol."""
        per = [self.posteriors(m, protocol, split) for m in models]
        seeds = sorted(set.intersection(*(set(p) for p in per))) if per else []
        rows = [(sum(p[s][0] for p in per) / len(per)).argmax(1) != per[0][s][1] for s in seeds]
        return seeds, torch.stack(rows).float() if rows else torch.empty(0, 0)

    def cell(self, model: str, protocol: str, split: str = "test", ensemble: Sequence[str] = ()) -> Cell:
        models = [model, *ensemble]
        per = [self.posteriors(m, protocol, split) for m in models]
        seeds = sorted(set.intersection(*(set(p) for p in per)))
        top1, top5 = [], []
        for s in seeds:
            p, y = sum(q[s][0] for q in per) / len(per), per[0][s][1]
            hit = p.topk(min(5, p.shape[1]), 1).indices == y[:, None]
            top1.append(100 * (1 - hit[:, 0].float().mean().item()))
            top5.append(100 * (1 - hit.any(1).float().mean().item()))
        return Cell(seeds, top1, top5)

    def trained(self, run: str) -> bool:
        """Whether a run left chance: its last validation error (its own held-out images) is more than
        :data:`CHANCE_MARGIN` points below chance, and so did the run it started from. A net that never did is a
        failed run, not a measurement."""
        spec = next((r for r in self.runs if r.name == run), None)
        if spec is not None and spec.init_from and not self.trained(spec.init_from):
            return False  # fine-tuned from a net that never trained: not the paper's procedure either
        val = self.saved["val"].get(run)
        history = val["meta"].get("history", []) if val else []
        errors = [h["val_top1_err"] for h in history if "val_top1_err" in h]
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
        fixed = {m: mean_error(results, m, f"{family}@1") for m in (f"{letter}_256{suffix}", f"{letter}_384{suffix}")}
        fixed = {m: e for m, e in fixed.items() if e is not None}
        better_s[letter] = {"val_top1": fixed, "chosen": min(fixed, key=fixed.get) if fixed else None}
    candidates = {
        m: mean_error(results, m, f"{family}@1")
        for m in results.models
        if any(r.group == "scales" or r.kind != "256" for r in results.specs(m)) and m[0] in "CDE"
    }
    candidates = {m: e for m, e in candidates.items() if e is not None}
    pair = sorted(candidates, key=candidates.get)[:2]
    return {
        "data": f"the {settings.val_split:,} training images each seed's runs held out (scale nets: "
        f"{PROTOCOL_LABEL[family + '@1']})",
        "better_fixed_s": better_s,
        "ensemble": {
            "val_top1": candidates,
            "pair": pair,
            "better": pair[0] if pair else None,
            "protocol": f"{family}@1",
        },
        "plateau": "each run's own validation split, every epoch",
    }


# -- the findings -----------------------------------------------------------------------------------------------------
@dataclass
class Finding:
    """One of the paper's findings, judged here."""

    claim: str
    data: str
    protocol: str
    a: str
    b: str
    kind: str  # "nets" (across seeds and test images) or "protocols" (paired over images)
    verdict: str
    effect: Effect | None = None
    paper: float | None = None  # the paper's own effect, points of top-1 error
    reason: str = ""
    no_better: bool = False

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["effect"] = asdict(self.effect) if self.effect else None
        return found


def compare_nets(results: Results, claim: str, a: str, b: str, protocol: str, paper: float, no_better=False) -> Finding:
    seeds_a, wrong_a = results.wrong([a], protocol)
    seeds_b, wrong_b = results.wrong([b], protocol)
    common = sorted(set(seeds_a) & set(seeds_b))
    effect = None
    if common:
        pick_a = wrong_a[[seeds_a.index(s) for s in common]]
        pick_b = wrong_b[[seeds_b.index(s) for s in common]]
        effect = between_nets(pick_a, pick_b)
    reason = "" if effect else "fewer than two seeds of both nets trained: training noise cannot be measured"
    return Finding(
        claim, data_of(results, a), protocol, a, b, "nets", verdict(effect, no_better), effect, paper, reason, no_better
    )


def compare_protocols(
    results: Results, claim: str, model: str | list[str], a: str, b: str, paper: float, other: str | None = None
) -> Finding:
    """Protocol ``a`` against ``b`` (or, with ``other``, the models ``model`` under ``a`` against ``other`` under b:
    an ensemble against its better member) on the same nets and images, paired."""
    models = [model] if isinstance(model, str) else model
    label = " + ".join(models)

    def judged(outcome: str, effect: Effect | None = None, reason: str = "") -> Finding:
        data = data_of(results, models[0])
        return Finding(claim, data, f"{a} vs {b}", label, other or label, "protocols", outcome, effect, paper, reason)

    broken = next((r for m in [*models, other or models[0]] if (r := protocol_breaks(results, m, a, b))), None)
    if broken:
        return judged(NOT_TESTABLE, reason=broken)
    seeds_a, wrong_a = results.wrong(models, a)
    seeds_b, wrong_b = results.wrong([other] if other else models, b)
    common = sorted(set(seeds_a) & set(seeds_b))
    if not common:
        return judged("not measured", reason="a run it needs did not finish")
    effect = between_protocols(wrong_a[[seeds_a.index(s) for s in common]], wrong_b[[seeds_b.index(s) for s in common]])
    return judged(verdict(effect), effect)


def protocol_breaks(results: Results, model: str, *protocols: str) -> str | None:
    if any("dense" in p for p in protocols) and results.dense_breaks(model):
        crop = results.settings.crop
        return f"dense evaluation: the net's stride (32) is at least the crop ({crop}); see the deviations"
    return None


def data_of(results: Results, model: str) -> str:
    specs = results.specs(model)
    return specs[0].dataset if specs else "?"


def findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """The paper's findings (Sect. 4.1-4.4), each on the data and protocol that can test it."""
    net = judged_by(results.settings, "nets") + "@1"
    found = [
        compare_nets(
            results,
            "LRN does not improve net A: A-LRN no better than A",
            "A-LRN_256",
            "A_256",
            net,
            -0.1,
            no_better=True,
        ),
        compare_nets(results, "depth helps: B (13 layers) beats A (11)", "B_256", "A_256", net, 0.9),
        compare_nets(results, "extra non-linearity helps: C (1x1 convolutions) beats B", "C_256", "B_256", net, 0.6),
        compare_nets(results, "3x3 beats 1x1 at equal depth: D beats C", "D_256", "C_256", net, 1.1),
        compare_nets(
            results, "depth saturates: E (19 layers) no better than D (16)", "E_256", "D_256", net, -0.3, no_better=True
        ),
    ]
    suffix = "_scaled" if results.settings.separate_scale_runs else ""
    geo = results.geometry
    family = judged_by(results.settings, "scales" if results.settings.separate_scale_runs else "nets")
    for letter in results.settings.scale_nets:
        best = chosen["better_fixed_s"][letter]["chosen"] or f"{letter}_256{suffix}"
        kind = results.specs(best)[0].kind
        paper = PAPER_TABLE3[f"{letter}_{kind}"][0] - PAPER_TABLE3[f"{letter}_jitter"][0]
        found.append(
            compare_nets(
                results,
                f"scale jittering helps: {letter} trained at {geo.label('jitter')} beats "
                f"the better fixed S ({geo.label(kind)}, chosen on validation)",
                f"{letter}_jitter{suffix}",
                best,
                f"{family}@1",
                round(paper, 2),
            )
        )
    for letter in results.settings.scale_nets:
        m = f"{letter}_jitter{suffix}"
        paper = PAPER_TABLE3.get(f"{letter}_jitter", (0,))[0] - PAPER_TABLE4.get(f"{letter}_jitter", (0,))[0]
        found.append(
            compare_protocols(
                results,
                f"multi-scale testing helps: {letter}/{geo.label('jitter')} at three Q beats one",
                m,
                family,
                f"{family}@1",
                round(paper, 2),
            )
        )
    return found + testing_findings(results, chosen)


def testing_findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """Sect. 4.3-4.4: multi-crop against dense, both together, and the ensemble of the two best nets."""
    suffix = "_scaled" if results.settings.separate_scale_runs else ""
    found = []
    for letter in (x for x in ("D", "E") if x in results.settings.scale_nets):
        m = f"{letter}_jitter{suffix}"
        paper = PAPER_TABLE5[f"{letter}_jitter"]
        found.append(
            compare_protocols(
                results,
                f"multi-crop is slightly better than dense ({letter}, jittered S)",
                m,
                "multicrop",
                "dense",
                round(paper["dense"][0] - paper["multicrop"][0], 2),
            )
        )
        found.append(
            compare_protocols(
                results,
                f"multi-crop & dense together beat multi-crop alone ({letter})",
                m,
                "dense+multicrop",
                "multicrop",
                round(paper["multicrop"][0] - paper["dense+multicrop"][0], 2),
            )
        )
    ens = chosen["ensemble"]
    if len(ens["pair"]) == 2:
        other = [m for m in ens["pair"] if m != ens["better"]]
        found.append(
            compare_protocols(
                results,
                "an ensemble of the two best nets (chosen on validation) beats the better of them",
                [ens["better"], *other],
                ens["protocol"],
                ens["protocol"],
                0.7,
                other=ens["better"],
            )
        )
    return found
