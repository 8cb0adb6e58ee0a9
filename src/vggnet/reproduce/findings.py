"""Each of the paper's findings judged on a reproduction's runs (:mod:`vggnet.reproduce.stats`): nets against nets,
protocols on the same nets, the ensemble against its better member, and how often deep nets stall
(:mod:`vggnet.reproduce.stalls`). The seed (one trained net) is the unit of every finding; each carries its verdict,
the verdict after Holm's adjustment for the findings judged together, how often its rule decides without an effect
at its own seeds (:mod:`vggnet.reproduce.calibration`), and its power and the seeds 80 % power would need at two
effects: the paper's own, and the paper's scaled by the ratio of this data's error to the paper's.

What keeps a finding from a verdict is said in four ways: *not testable here* (the miniature's geometry cannot pose
the question), *not tested by design* (the plan's procedure leaves it out), *not measured: N of M runs stalled* (its
runs never left chance) and *too few seeds* (fewer than :data:`~vggnet.reproduce.stats.MIN_SEEDS` seeds of both
sides).
"""

from __future__ import annotations

from typing import Any

from ..base.configs import CONFIGS
from ..network.layers import PREINIT_LAYERS
from .geometry import Geometry
from .judged import FEW_SEEDS, NOT_MEASURED, PAPER_ENSEMBLE_MEMBER, Finding
from .plan import judged_by
from .results import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, Results
from .stalls import data_of, stall_findings
from .stats import (
    MIN_SEEDS,
    NOT_TESTABLE,
    TOO_FEW,
    Effect,
    adjusted_verdict,
    between_nets,
    between_protocols,
    holm,
    verdict,
)


def stalled_runs(results: Results, models: list[str]) -> list[int]:
    """[runs of ``models`` that ran and never left chance, or started from a run that did not; all their runs]."""
    runs = [s.name for m in models for s in results.specs(m)]
    return [sum(r in results.saved["val"] and not results.trained(r) for r in runs), len(runs)]


def without_verdict(found: Finding, results: Results, models: list[str], broken: str) -> Finding:
    """Where no verdict can come: the geometry (``broken``), runs lost to stalls, or too few seeds."""
    found.stalled = stalled_runs(results, models)
    if broken:
        found.verdict, found.reason = NOT_TESTABLE, broken
    elif found.seeds < MIN_SEEDS and found.stalled[0]:
        found.verdict = NOT_MEASURED
        found.reason = "its runs never left chance, or started from a run that did not; too few seeds remain"
    elif found.seeds < MIN_SEEDS:
        found.verdict, found.reason = TOO_FEW, FEW_SEEDS
    elif found.stalled[0]:
        found.reason = f"{found.stalled[0]} of {found.stalled[1]} runs stalled and are left out"
    return found


def base_of(model: str) -> str:
    """``D_256_scaled`` -> ``D_256``: the paper's name of a model."""
    return model.replace("_scaled", "").replace("_scratch", "")


def compare_nets(
    results: Results, ident: str, claim: str, a: str, b: str, protocol: str, paper: float, no_better=False, broken=""
) -> Finding:
    """Net ``a`` against net ``b`` on the same test images, seed s of a against seed s of b."""
    seeds, effect = results.measured((a, b, protocol), lambda: paired(results, [a], protocol, [b], protocol, False))
    found = Finding(claim, data_of(results, a), protocol, a, b, "nets", verdict(effect, no_better), effect, paper)
    found.id, found.no_better, found.seeds = ident, no_better, seeds
    found.paper_error = PAPER_TABLE3[base_of(b)][0]
    found.error_here = results.cell(b, protocol).mean
    return without_verdict(found, results, [a, b], broken).judge()


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
    results: Results,
    ident: str,
    claim: str,
    model: str | list[str],
    protocols: tuple[str, str],
    paper: tuple[float, float],
    other: str | None = None,
) -> Finding:
    """Protocol ``a`` against ``b`` (``protocols``; or, with ``other``, the models ``model`` under ``a`` against
    ``other`` under b: an ensemble against its better member) on the same nets and images, the seed as the unit.
    ``paper``: the paper's effect, and its error of side b."""
    models = [model] if isinstance(model, str) else model
    label, (a, b) = " + ".join(models), protocols
    side_b = other or models[0]
    broken = next((r for m in [*models, side_b] if (r := protocol_breaks(results, m, a, b))), "")
    seeds, effect = 0, None
    if not broken:
        measure = lambda: paired(results, models, a, [other] if other else models, b, True)  # noqa: E731
        seeds, effect = results.measured((label, other or label, f"{a} vs {b}"), measure)
    found = Finding(claim, data_of(results, models[0]), f"{a} vs {b}", label, other or label, "protocols", "")
    found.verdict, found.effect, found.paper, found.seeds, found.id = verdict(effect), effect, paper[0], seeds, ident
    found.paper_error, found.error_here = paper[1], results.cell(side_b, b).mean
    return without_verdict(found, results, list(dict.fromkeys([*models, side_b])), broken).judge()


def protocol_breaks(results: Results, model: str, *protocols: str) -> str | None:
    if any("dense" in p for p in protocols) and results.dense_breaks(model):
        crop = results.settings.crop
        return f"dense evaluation: the net's stride (32) is at least the crop ({crop}); see the deviations"
    return None


def findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """The paper's findings (Sect. 3.1, 4.1-4.4), each on the data and protocol that can test it, judged together:
    Holm's adjustment over every finding with a test."""
    found = net_findings(results) + scale_findings(results, chosen) + testing_findings(results, chosen)
    found += stall_findings(results)
    for f, p in zip(found, holm([f.p for f in found])):
        f.adjusted_p = p
        f.adjusted_verdict = adjusted_verdict(f.verdict, p)
    return found


def net_findings(results: Results) -> list[Finding]:
    """Table 3's nets at the small S: LRN, depth, 1x1 against 3x3, depth's saturation."""
    net = judged_by(results.settings, "nets") + "@1"
    one_by_one = Geometry(results.settings.crop).one_by_one_breaks() or ""
    lrn = "LRN does not improve net A: A-LRN no better than A"
    found = [
        compare_nets(results, "lrn", lrn, "A-LRN_256", "A_256", net, -0.1, no_better=True),
        compare_nets(results, "B-A", "depth helps: B (13 layers) beats A (11)", "B_256", "A_256", net, 0.9),
        compare_nets(
            results, "C-B", "extra non-linearity helps: C (1x1 convolutions) beats B", "C_256", "B_256", net, 0.6
        ),
        compare_nets(
            results, "D-C", "3x3 beats 1x1 at equal depth: D beats C", "D_256", "C_256", net, 1.1, broken=one_by_one
        ),
        compare_nets(
            results, "E-D", "depth saturates: E (19 layers) no better than D (16)", "E_256", "D_256", net, -0.3, True
        ),
    ]
    if not results.settings.batch_norm and found[2].reason == "":  # what C against B measures, from net A
        found[2].reason = (
            f"C starts {uncopied('C')} convolutions from random weights between those copied from net A, B "
            f"{uncopied('B')}: it measures the 1x1 layers and that start together, and cannot separate them"
        )
    for x, layers in (("D", 16), ("E", 19)):  # depth beyond B, each against B (the paper's Table 3)
        paper = round(PAPER_TABLE3["B_256"][0] - PAPER_TABLE3[f"{x}_256"][0], 2)
        claim = f"depth beyond 13 layers helps: {x} ({layers} layers) beats B (13)"
        found.append(compare_nets(results, f"{x}-B", claim, f"{x}_256", "B_256", net, paper))
    return found


def uncopied(letter: str) -> int:
    """The convolutions of a deeper net that do not start from net A's (it copies four)."""
    return sum(not isinstance(x, str) for x in CONFIGS[letter]) - sum(n.startswith("conv") for n in PREINIT_LAYERS)


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
        claim = (
            f"scale jittering helps: {letter} trained at {geo.label('jitter')} beats "
            f"the better fixed S ({geo.label(kind)}, chosen on validation)"
        )
        jittered = f"{letter}_jitter{suffix}"
        found.append(compare_nets(results, f"jitter-{letter}", claim, jittered, best, f"{family}@1", round(paper, 2)))
    for letter in results.settings.scale_nets:
        single = PAPER_TABLE3.get(f"{letter}_jitter", (0,))[0]
        paper = single - PAPER_TABLE4.get(f"{letter}_jitter", (0,))[0]
        claim = f"multi-scale testing helps: {letter}/{geo.label('jitter')} at three Q beats one"
        m = f"{letter}_jitter{suffix}"
        found.append(
            compare_protocols(
                results, f"multiscale-{letter}", claim, m, (family, f"{family}@1"), (round(paper, 2), single)
            )
        )
    return found


def testing_findings(results: Results, chosen: dict[str, Any]) -> list[Finding]:
    """Sect. 4.3-4.4: multi-crop against dense, both together, and the ensemble of the two best nets."""
    suffix = "_scaled" if results.settings.separate_scale_runs else ""
    found = []
    for letter in (x for x in ("D", "E") if x in results.settings.scale_nets):
        m = f"{letter}_jitter{suffix}"
        dense, crops, both = (PAPER_TABLE5[f"{letter}_jitter"][p][0] for p in ("dense", "multicrop", "dense+multicrop"))
        claim = f"multi-crop is slightly better than dense ({letter}, jittered S)"
        paper = (round(dense - crops, 2), dense)
        found.append(compare_protocols(results, f"multicrop-{letter}", claim, m, ("multicrop", "dense"), paper))
        claim = f"multi-crop & dense together beat multi-crop alone ({letter})"
        paper = (round(crops - both, 2), crops)
        found.append(compare_protocols(results, f"both-{letter}", claim, m, ("dense+multicrop", "multicrop"), paper))
    ens = chosen["ensemble"]
    claim = "an ensemble of the two best nets (chosen on validation, each from another seed) beats the better of them"
    if len(ens["pair"]) == 2:
        other = [m for m in ens["pair"] if m != ens["better"]]
        protocols, paper = (ens["protocol"], ens["protocol"]), (0.7, PAPER_ENSEMBLE_MEMBER)
        found.append(
            compare_protocols(results, "ensemble", claim, [ens["better"], *other], protocols, paper, ens["better"])
        )
    else:
        lost = Finding(claim, "?", ens["protocol"], "?", "?", "protocols", NOT_MEASURED, None, 0.7)
        lost.id, lost.reason = "ensemble", "no two nets trained"
        found.append(lost)
    return found
