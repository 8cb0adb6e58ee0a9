"""Runs that never left chance, as findings: how often each net and procedure failed (Wilson's interval), and the
paper's reason to pre-initialise its deeper nets (Sect. 3.1): deep nets without BN stall from random weights, and
not from net A's layers."""

from __future__ import annotations

from typing import Any

from .judged import BY_DESIGN, FEW_SEEDS, Finding
from .results import Results
from .stats import CONTRADICTED, HOLDS, LEVEL, MIN_SEEDS, NOT_RESOLVED, TOO_FEW, Effect, share_difference, wilson


def procedure(results: Results, model: str) -> str:
    spec = results.specs(model)[0]
    if spec.init == "preinit":
        return "from net A's layers"
    return "fine-tuned" if spec.init == "finetune" else "from random weights"


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


def stall_findings(results: Results) -> list[Finding]:
    """The findings about stalls that the plan tests."""
    return [failure_finding(results)]


def failure_finding(results: Results) -> Finding:
    """The paper's reason to pre-initialise (Sect. 3.1): deep nets without BN stall more often from random weights
    than when started from net A's layers. Pooled over the nets trained both ways, one run of each per seed."""
    claim = "deep nets without BN stall more often from random weights than from net A's layers"
    s = results.settings
    pairs = [(f"{x}_256_scratch", f"{x}_256") for x in s.scratch_nets]
    base = Finding(claim, s.main_data, "never left chance", "from random weights", "from A's layers", "failures", "")
    base.id = "stall"
    if s.batch_norm:
        base.verdict, base.reason = BY_DESIGN, "with BN every net is trained from random weights"
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
    if seeds < MIN_SEEDS:
        base.verdict, base.reason = TOO_FEW, FEW_SEEDS
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
