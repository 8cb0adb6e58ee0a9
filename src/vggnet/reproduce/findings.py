"""Each of the paper's findings judged on a reproduction's runs (:mod:`vggnet.reproduce.stats`): nets against nets,
protocols on the same nets, the ensemble against its better member, and how often deep nets stall from random
weights. The seed (one trained net) is the unit of every finding; each carries its verdict, the verdict after Holm's
adjustment for the findings judged together, its power at the paper's own effect and the seeds 80 % power would need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .geometry import Geometry
from .plan import judged_by
from .results import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, Results
from .stats import (
    CONTRADICTED,
    HOLDS,
    LEVEL,
    NOT_RESOLVED,
    NOT_TESTABLE,
    Effect,
    adjusted_verdict,
    between_nets,
    between_protocols,
    equivalence,
    holm,
    p_value,
    power_at,
    seeds_for_power,
    share_difference,
    verdict,
    wilson,
)

FEW_SEEDS = "fewer than two seeds of both sides trained: training noise cannot be measured"


@dataclass
class Finding:
    """One of the paper's findings, judged here."""

    claim: str
    data: str
    protocol: str
    a: str
    b: str
    kind: str  # "nets" (nets against nets), "protocols" (protocols on the same nets) or "failures"
    verdict: str
    effect: Effect | None = None
    paper: float | None = None  # the paper's own effect, points of top-1 error
    reason: str = ""
    no_better: bool = False
    unit: str = "seed"
    seeds: int = 0
    p: float | None = None
    adjusted_p: float | None = None
    adjusted_verdict: str = ""
    power_at_paper: float | None = None
    seeds_for_power: int | None = None
    equivalence: dict[str, Any] | None = None  # no-better findings: the paper's near-equality, judged by TOST

    def judge(self) -> Finding:
        """Fill in what follows from the effect: the p-value, power and seeds at the paper's effect, and for a
        *no better* finding the test of the paper's near-equality."""
        e = self.effect
        self.seeds = e.seeds if e else self.seeds
        if self.verdict == NOT_TESTABLE or e is None:
            return self
        if self.kind != "failures":
            self.p = p_value(e, self.no_better)
        if self.paper is not None and self.kind != "failures":
            self.power_at_paper = power_at(self.paper, e.se, e.df, self.no_better)
            self.seeds_for_power = seeds_for_power(e, self.paper, self.no_better)
        if self.no_better:
            self.equivalence = equivalence(e)
            if self.equivalence is not None and self.paper is not None:
                self.equivalence["power_at_paper"] = power_at(self.paper, e.se, e.df, equivalent=True)
                self.equivalence["seeds_for_power"] = seeds_for_power(e, self.paper, equivalent=True)
        return self

    def line(self, adjusted: bool = False) -> str:
        """The verdict as the report prints it; a *no better* finding says both of its readings."""
        said = self.adjusted_verdict if adjusted else self.verdict
        if not self.no_better or self.equivalence is None:
            return said
        e, close = self.effect, self.equivalence["verdict"]
        detail = ""
        if close != HOLDS and e is not None:
            detail = f", {self.a.split('_')[0]} {'worse' if e.effect < 0 else 'better'} by {abs(e.effect):.2f}"
        return f"no better: {said}; as close as the paper found: {close}{detail}"

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["effect"] = asdict(self.effect) if self.effect else None
        found["line"] = self.line()
        return found


def compare_nets(
    results: Results, claim: str, a: str, b: str, protocol: str, paper: float, no_better=False, broken: str = ""
) -> Finding:
    seeds, effect = results.measured((a, b, protocol), lambda: paired(results, [a], protocol, [b], protocol, False))
    outcome = NOT_TESTABLE if broken else verdict(effect, no_better)
    reason = broken or ("" if effect else FEW_SEEDS)
    found = Finding(claim, data_of(results, a), protocol, a, b, "nets", outcome, effect, paper, reason, no_better)
    found.seeds = seeds
    return found.judge()


def paired(
    results: Results, models_a: list[str], protocol_a: str, models_b: list[str], protocol_b: str, protocols: bool
) -> tuple[int, Effect | None]:
    """The seeds both sides have, and the effect over them: nets against nets, or (``protocols``) protocols on the
    same nets."""
    seeds_a, wrong_a = results.wrong(models_a, protocol_a)
    seeds_b, wrong_b = results.wrong(models_b, protocol_b)
    common = sorted(set(seeds_a) & set(seeds_b))
    if not common:
        return 0, None
    pick_a = wrong_a[[seeds_a.index(s) for s in common]]
    pick_b = wrong_b[[seeds_b.index(s) for s in common]]
    return len(common), (between_protocols if protocols else between_nets)(pick_a, pick_b)


def compare_protocols(
    results: Results, claim: str, model: str | list[str], a: str, b: str, paper: float, other: str | None = None
) -> Finding:
    """Protocol ``a`` against ``b`` (or, with ``other``, the models ``model`` under ``a`` against ``other`` under b:
    an ensemble against its better member) on the same nets and images, the seed as the unit."""
    models = [model] if isinstance(model, str) else model
    label = " + ".join(models)

    def judged(outcome: str, effect: Effect | None = None, reason: str = "", seeds: int = 0) -> Finding:
        data = data_of(results, models[0])
        found = Finding(claim, data, f"{a} vs {b}", label, other or label, "protocols", outcome, effect, paper, reason)
        found.seeds = seeds
        return found.judge()

    broken = next((r for m in [*models, other or models[0]] if (r := protocol_breaks(results, m, a, b))), None)
    if broken:
        return judged(NOT_TESTABLE, reason=broken)
    key = (label, other or label, f"{a} vs {b}")
    seeds, effect = results.measured(key, lambda: paired(results, models, a, [other] if other else models, b, True))
    if not seeds:
        return judged(NOT_TESTABLE, reason="no seed has both sides (a run it needs did not train)")
    return judged(verdict(effect), effect, "" if effect else FEW_SEEDS, seeds)


def protocol_breaks(results: Results, model: str, *protocols: str) -> str | None:
    if any("dense" in p for p in protocols) and results.dense_breaks(model):
        crop = results.settings.crop
        return f"dense evaluation: the net's stride (32) is at least the crop ({crop}); see the deviations"
    return None


def data_of(results: Results, model: str) -> str:
    specs = results.specs(model)
    return specs[0].dataset if specs else "?"


def findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """The paper's findings (Sect. 3.1, 4.1-4.4), each on the data and protocol that can test it, judged together:
    Holm's adjustment over every finding with a test."""
    found = net_findings(results) + scale_findings(results, chosen) + testing_findings(results, chosen)
    found.append(failure_finding(results))
    for f, p in zip(found, holm([f.p for f in found])):
        f.adjusted_p = p
        f.adjusted_verdict = adjusted_verdict(f.verdict, p)
    return found


def net_findings(results: Results) -> list[Finding]:
    """Table 3's nets at the small S: LRN, depth, 1x1 against 3x3, depth's saturation."""
    net = judged_by(results.settings, "nets") + "@1"
    one_by_one = Geometry(results.settings.crop).one_by_one_breaks()
    return [
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
        compare_nets(
            results, "3x3 beats 1x1 at equal depth: D beats C", "D_256", "C_256", net, 1.1, broken=one_by_one or ""
        ),
        compare_nets(
            results, "depth saturates: E (19 layers) no better than D (16)", "E_256", "D_256", net, -0.3, no_better=True
        ),
    ]


def scale_findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """Table 3's scale jittering against the better fixed S, and Table 4's multi-scale testing."""
    suffix = "_scaled" if results.settings.separate_scale_runs else ""
    geo = results.geometry
    family = judged_by(results.settings, "scales" if results.settings.separate_scale_runs else "nets")
    found = []
    for letter in results.settings.scale_nets:
        best = chosen["better_fixed_s"][letter]["chosen"] or f"{letter}_256{suffix}"
        kind = results.specs(best)[0].kind if results.specs(best) else "256"
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
    return found


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
    claim = "an ensemble of the two best nets (chosen on validation, each from another seed) beats the better of them"
    if len(ens["pair"]) == 2:
        other = [m for m in ens["pair"] if m != ens["better"]]
        found.append(
            compare_protocols(
                results, claim, [ens["better"], *other], ens["protocol"], ens["protocol"], 0.7, other=ens["better"]
            )
        )
    else:
        found.append(
            Finding(claim, "?", ens["protocol"], "?", "?", "protocols", NOT_TESTABLE, None, 0.7, "no two nets trained")
        )
    return found


# -- failures ---------------------------------------------------------------------------------------------------------
def procedure(results: Results, model: str) -> str:
    spec = results.specs(model)[0]
    if spec.init == "preinit":
        return "from net A's layers"
    return "fine-tuned" if spec.init == "finetune" else "from random weights"


def failures(results: Results) -> dict[str, dict[str, Any]]:
    """Per model (a net and its procedure), the share of its validated runs that never left chance, with Wilson's
    interval (percent)."""
    table = {}
    for model in results.models:
        runs = [s.name for s in results.specs(model) if s.name in results.saved["val"]]
        if not runs:
            continue
        failed = [r for r in runs if not results.left_chance(r)]
        low, high = wilson(len(failed), len(runs))
        table[model] = {
            "procedure": procedure(results, model),
            "data": data_of(results, model),
            "runs": len(runs),
            "failed": len(failed),
            "share": 100 * len(failed) / len(runs),
            "low": low,
            "high": high,
            "failed_runs": failed,
        }
    return table


def failure_finding(results: Results) -> Finding:
    """The paper's reason to pre-initialise (Sect. 3.1): deep nets without BN stall more often from random weights
    than when started from net A's layers. Pooled over the nets trained both ways, one run of each per seed."""
    claim = "deep nets without BN stall more often from random weights than from net A's layers"
    s = results.settings
    pairs = [(f"{x}_256_scratch", f"{x}_256") for x in s.scratch_nets]
    base = Finding(claim, s.main_data, "never left chance", "from random weights", "from A's layers", "failures", "")
    if s.batch_norm:
        base.verdict, base.reason = NOT_TESTABLE, "with BN every net is trained from random weights"
        return base
    scratch, preinit, per_seed = [0, 0], [0, 0], {}
    for a, b in pairs:
        for spec in results.specs(a):
            twin = f"{b}_seed{spec.seed}"
            if spec.name not in results.saved["val"] or twin not in results.saved["val"]:
                continue
            fa, fb = not results.left_chance(spec.name), not results.left_chance(twin)
            scratch = [scratch[0] + fa, scratch[1] + 1]
            preinit = [preinit[0] + fb, preinit[1] + 1]
            per_seed.setdefault(spec.seed, []).append(100.0 * (fa - fb))
    seeds = len(per_seed)
    base.seeds = seeds
    if seeds < 2:
        base.verdict, base.reason = NOT_TESTABLE, FEW_SEEDS
        return base
    diff, low, high, p = share_difference(scratch[0], scratch[1], preinit[0], preinit[1])
    method = "share of runs that never left chance: Newcombe's interval, Fisher's exact test"
    by_seed = [sum(d) / len(d) for d in per_seed.values()]  # points: the seed's nets' shares, scratch less preinit
    base.effect = Effect(diff, low, high, 0.0, by_seed, method, seeds, 0)  # no detectable effect
    base.p = p
    decisive = p < 1 - LEVEL
    base.verdict = (HOLDS if diff > 0 else CONTRADICTED) if decisive else NOT_RESOLVED
    base.reason = f"{scratch[0]} of {scratch[1]} runs from random weights, {preinit[0]} of {preinit[1]} from A's layers"
    return base.judge()
