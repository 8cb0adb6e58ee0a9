"""Runs that never left chance, as findings: how often each net and procedure failed (Wilson's interval), and the
paper's reason to pre-initialise its deeper nets (Sect. 3.1): deep nets without BN stall from random weights, and
not from net A's layers."""

from __future__ import annotations

from typing import Any

from .judged import BY_DESIGN, FEW_SEEDS, Finding
from .results import Results
from .stats import CONTRADICTED, HOLDS, LEVEL, MIN_SEEDS, NOT_RESOLVED, TOO_FEW, Effect, share_difference, wilson


def procedure(results: Results, model: str) -> str:
    spec, s = results.specs(model)[0], results.settings
    if spec.init == "finetune":
        return "fine-tuned"
    if not s.stall_test:  # plans made before the stall test
        return "from net A's layers" if spec.init == "preinit" else "from random weights"
    if spec.init == "preinit":
        return f"from net A's layers, the rest {spec.init_scheme or s.rest_scheme}"
    return f"from random weights ({spec.init_scheme or s.init_scheme})"


def data_of(results: Results, model: str) -> str:
    specs = results.specs(model)
    return specs[0].dataset if specs else "?"


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


# The arms of the stall test: (the paper's statement, whether it says the arm stalls).
ARMS = {
    "normal": ("deep nets from N(0, 0.01) stall (most of their runs never leave chance)", True),
    "preinit_normal": ("deep nets from net A's layers, the rest at N(0, 0.01), do not stall", False),
    "scratch": ("deep nets from Glorot's initialisation do not stall (the paper's footnote)", False),
}
ARM_LABEL = {"normal": "from N(0, 0.01)", "preinit_normal": "from A's layers, the rest N(0, 0.01)", "scratch": "Glorot"}


def stall_findings(results: Results) -> list[Finding]:
    """The findings about stalls the plan tests: with the stall test, each arm's statement (does it stall: most
    of its runs never leave chance) and the paper's reason to pre-initialise (N(0, 0.01) from scratch against net
    A's layers), all with equal budgets; in plans before it, Glorot's from scratch against the nets from A."""
    s = results.settings
    if s.batch_norm:
        claim = "deep nets without BN stall more often from random weights than from net A's layers"
        found = Finding(claim, s.main_data, "never left chance", "from random weights", "from A's layers", "", "")
        found.id, found.kind, found.verdict = "stall", "failures", BY_DESIGN
        found.reason = "with BN every net is trained from random weights"
        return [found]
    if not s.stall_test:
        return [compare_starts(results, "scratch", "", "from random weights")]
    found = [arm_finding(results, arm) for arm in ARMS]
    return found + [compare_starts(results, "normal", "preinit_normal", "from N(0, 0.01)")]


def stalled(results: Results, arm: str, letters: list[str]) -> dict[int, list[bool]]:
    """seed -> whether each of its validated runs of these nets in this arm never left chance."""
    per_seed: dict[int, list[bool]] = {}
    for letter in letters:
        for spec in results.specs(f"{letter}_256_{arm}" if arm else f"{letter}_256"):
            if spec.name in results.saved["val"]:
                per_seed.setdefault(spec.seed, []).append(not results.left_chance(spec.name))
    return per_seed


def arm_finding(results: Results, arm: str) -> Finding:
    """One arm's statement: whether most of its deep nets' runs never leave chance (Wilson's interval against one
    half), pooled over the nets and seeds; net A from N(0, 0.01), the control, in the reason."""
    from scipy.stats import binomtest

    claim, stalls = ARMS[arm]
    s = results.settings
    found = Finding(claim, s.main_data, "never left chance", ARM_LABEL[arm], "half of the runs", "failures", TOO_FEW)
    found.id = f"stall-{arm.replace('_', '-')}"
    per_seed = stalled(results, arm, s.scratch_nets)
    runs = [x for v in per_seed.values() for x in v]
    control = [x for v in stalled(results, "normal", ["A"]).values() for x in v]
    found.seeds, found.stalled = len(per_seed), [sum(runs), len(runs)]
    found.reason = f"{sum(runs)} of {len(runs)} runs never left chance" + (
        f"; net A from N(0, 0.01), the control: {sum(control)} of {len(control)}" if control else ""
    )
    if found.seeds < MIN_SEEDS:
        found.reason += f"; {FEW_SEEDS}"
        return found
    low, high = wilson(sum(runs), len(runs))
    share = 100 * sum(runs) / len(runs)
    method = "share of runs that never left chance: Wilson's interval, the binomial test against one half"
    found.effect = Effect(share, low, high, 0.0, [100 * sum(v) / len(v) for v in per_seed.values()], method, 0, 0)
    found.effect.seeds = found.seeds
    found.p = binomtest(sum(runs), len(runs), 0.5).pvalue
    said, other = (low > 50, high < 50) if stalls else (high < 50, low > 50)  # the paper's side of one half, the other
    found.verdict = HOLDS if said else CONTRADICTED if other else NOT_RESOLVED
    return found


def compare_starts(results: Results, arm: str, other: str, label: str) -> Finding:
    """The paper's reason to pre-initialise (Sect. 3.1): deep nets without BN stall more often from random weights
    (``arm``) than from net A's layers (``other``: its arm, or "" for the plan's nets from A). Pooled over the nets
    trained both ways, one run of each per seed."""
    s = results.settings
    claim = f"deep nets without BN stall more often {label} than from net A's layers"
    base = Finding(claim, s.main_data, "never left chance", label, "from A's layers", "failures", TOO_FEW)
    base.id = "stall"
    a, b = stalled(results, arm, s.scratch_nets), stalled(results, other, s.scratch_nets)
    common = sorted(set(a) & set(b))
    pairs = [(x, y) for seed in common for x, y in zip(a[seed], b[seed])]
    base.seeds = len(common)
    if base.seeds < MIN_SEEDS:
        base.reason = FEW_SEEDS
        return base
    fa, fb = sum(x for x, _ in pairs), sum(y for _, y in pairs)
    diff, low, high, p = share_difference(fa, len(pairs), fb, len(pairs))
    method = "share of runs that never left chance: Newcombe's interval, Fisher's exact test"
    by_seed = [100.0 * (sum(a[x]) - sum(b[x])) / len(a[x]) for x in common]  # points: the seed's nets, a less b
    base.effect = Effect(diff, low, high, 0.0, by_seed, method, base.seeds, 0)  # no detectable effect
    base.p = p
    decisive = p < 1 - LEVEL
    base.verdict = (HOLDS if diff > 0 else CONTRADICTED) if decisive else NOT_RESOLVED
    base.reason = f"{fa} of {len(pairs)} runs {label}, {fb} of {len(pairs)} from A's layers"
    return base.judge()
