"""The verdict rule of vggnet reproduce, on simulated data: at most 5 % decisive verdicts where there is no effect,
and the power to find one that is there."""

import torch

from vggnet.reproduce.stats import (
    CONTRADICTED,
    HOLDS,
    MARGIN,
    NOT_RESOLVED,
    NOT_TESTABLE,
    between_nets,
    between_protocols,
    calibration,
    simulate_nets,
    simulate_protocols,
    verdict,
)


def rates(found):
    return {v: sum(x == v for x in found) / len(found) for v in (HOLDS, CONTRADICTED, NOT_RESOLVED)}


def test_net_against_net_decides_at_most_5_percent_of_comparisons_without_an_effect():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    found = [verdict(between_nets(*simulate_nets(g, 4, 2000))) for _ in range(600)]
    r = rates(found)
    assert r[HOLDS] + r[CONTRADICTED] <= 0.05, r
    # one seed cannot tell a net from its training noise: not testable, never a verdict
    assert verdict(between_nets(*simulate_nets(g, 1, 2000))) == NOT_TESTABLE


def test_net_against_net_finds_an_effect_that_is_there():
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    effects = [between_nets(*simulate_nets(g, 4, 2000, shift_b=0.5)) for _ in range(200)]
    found = [verdict(e) for e in effects]
    assert rates(found)[HOLDS] >= 0.8 and rates(found)[CONTRADICTED] == 0  # power at a ~5-point difference
    true = sum(e.effect for e in effects) / len(effects)
    covered = sum(e.low <= true <= e.high for e in effects) / len(effects)
    assert covered >= 0.9 and all(e.detectable > 0 for e in effects)
    # the other way round it is contradicted, not "within noise"
    assert verdict(between_nets(*reversed(simulate_nets(g, 4, 2000, shift_b=0.6)))) == CONTRADICTED


def test_protocol_against_protocol_is_paired_and_decides_at_most_5_percent_without_an_effect():
    g = torch.Generator().manual_seed(2)
    found = [verdict(between_protocols(*simulate_protocols(g, 3, 3000))) for _ in range(600)]
    r = rates(found)
    assert r[HOLDS] + r[CONTRADICTED] <= 0.05, r
    effect = between_protocols(*simulate_protocols(g, 3, 10000, flip=0.1, better=0.3))
    assert (
        verdict(effect) == HOLDS and len(effect.per_seed) == 3 and all(lo < hi for lo, hi in effect.per_seed_intervals)
    )
    assert effect.method == "paired over images"


def test_no_better_holds_only_where_the_interval_excludes_the_papers_smallest_gain():
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    assert MARGIN == 0.2
    tight = between_nets(*simulate_nets(g, 8, 300_000, seed_noise=0.01))  # no effect, measured very precisely
    assert tight.high < MARGIN and verdict(tight, no_better=True) == HOLDS
    loose = between_nets(*simulate_nets(g, 4, 2000))  # no effect, measured as the miniature does
    assert verdict(loose, no_better=True) == NOT_RESOLVED and loose.high >= MARGIN
    helps = between_nets(*reversed(simulate_nets(g, 4, 20000, shift_b=0.5, seed_noise=0.02)))
    assert (
        helps.effect < 0
        and verdict(between_nets(*simulate_nets(g, 4, 20000, shift_b=0.5, seed_noise=0.02)), no_better=True)
        == CONTRADICTED
    )


def test_the_reports_calibration_is_the_rules_behaviour_at_the_runs_size():
    found = calibration(seeds=4, images=2000, trials=200)
    assert found["nets_decisive_without_effect"] <= 0.05 and found["protocols_decisive_without_effect"] <= 0.05
    assert found["nets_found_with_effect"] >= 0.8 and found["nets_effect"] > found["nets_detectable"] > 0
    assert calibration(seeds=4, images=2000, trials=200) == found  # deterministic
