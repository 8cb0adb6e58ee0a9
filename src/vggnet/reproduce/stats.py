"""The rule that judges each of the paper's findings: an effect, its 95 % confidence interval and a verdict, with the
seed (one trained net) as the unit of every finding.

Effects are in points of top-1 error, positive in the direction the paper found (``a`` has the lower error). Every
comparison, of nets or of protocols, starts from the same table: per seed and test image, the difference between
the two sides (1 where ``a`` is right and ``b`` is not, -1 the other way). Its mean per seed is that seed's effect,
and the finding's effect is the mean over seeds (:func:`across_seeds`). Its interval is Student's t with n - 1
degrees of freedom on the n per-seed effects, and nothing else: each seed's effect is measured on the same test
images, so the seeds' spread already holds the test set's sampling error (each seed's own images-by-net residual);
adding the images' term on top would count it twice, and made the rule decide less often than its level where the
seeds agreed (protocols) and more often at two seeds (a few images' degrees of freedom standing in for the seeds').
The images' term is kept in each effect's record (``var_test``) as a description. Protocols compared on the same
nets are treated the same way (a protocol's gain can differ from net to net); the per-image McNemar interval within
each seed is kept as a description.

Verdicts, only from :data:`MIN_SEEDS` seeds of both sides on (*too few seeds* below it: with two seeds the spread
has one degree of freedom, and an interval from it says little): **holds** where the interval excludes 0 in the
paper's direction, **contradicted** where it excludes 0 the other way, **not resolved** where it includes 0. A
finding that one thing is *no better* than another (LRN, E against D) is judged twice: literally (non-superiority: it
holds where the interval excludes an improvement as large as :data:`MARGIN`, the paper's smallest reported gain, and
is contradicted where it shows an improvement), and as the paper's result, near-equality (:func:`equivalence`: two
one-sided tests within :data:`EQUIVALENCE`). Many findings are judged at once: :func:`holm` adjusts their p-values
(Holm's step-down), and a finding's adjusted verdict is decisive only where its adjusted p-value is below 5 %. Power
is given at an effect (:func:`power_at`: the paper's own, or the paper's scaled to this data's error), with the
seeds that 80 % power would need (:func:`seeds_for_power`). How often the rule decides without an effect, at each
finding's own seeds, is simulated in :mod:`vggnet.reproduce.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

HOLDS, CONTRADICTED, NOT_RESOLVED, NOT_TESTABLE = "holds", "contradicted", "not resolved", "not testable here"
DOES_NOT_HOLD = "does not hold"
TOO_FEW = "too few seeds"  # fewer than MIN_SEEDS seeds of both sides: no verdict, the effect shown for the record
MIN_SEEDS = 3
# The paper's smallest reported gain, in points of top-1 error: multi-crop over dense evaluation (Table 5, 24.8 to
# 24.6) and D at S = 384 over S = 256 (Table 3, 27.0 to 26.8).
MARGIN = 0.2
# Near-equality as the paper found it (A-LRN and A 0.1 apart, E and D 0.3 at S = 256): a difference smaller than the
# smallest gain between nets that the paper reported as a finding (C over B, 0.6 points).
EQUIVALENCE = 0.6
LEVEL = 0.95
POWER = 0.80
MAX_SEEDS = 1000  # seeds_for_power's search bound: beyond it the answer is "more than 1000"


@dataclass
class Effect:
    """One comparison: the effect (points of top-1 error, positive in the paper's direction), its interval, the
    smallest effect it could have found, the per-seed effects, and the parts of its uncertainty."""

    effect: float
    low: float
    high: float
    detectable: float
    per_seed: list[float]
    method: str
    seeds: int
    images: int
    per_seed_intervals: list[list[float]] = field(default_factory=list)
    se: float = 0.0  # standard error of the effect
    df: float = math.inf  # its degrees of freedom (Welch-Satterthwaite)
    var_seeds: float = 0.0  # training noise: the per-seed effects' variance over the number of seeds
    var_test: float = 0.0  # the test set's sampling error

    @property
    def t(self) -> float:
        """The effect over its standard error."""
        return self.effect / self.se if self.se > 0 else math.copysign(math.inf, self.effect) if self.effect else 0.0


def _t(q: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def _cdf(x: float, df: float) -> float:
    from scipy.stats import t

    return float(t.cdf(x, df))


def across_seeds(diff: torch.Tensor, method: str = "seeds (test images in their spread)") -> Effect | None:
    """The effect of a seeds x images table of differences (1 where ``a`` is right and ``b`` wrong, -1 the other
    way, 0 where they agree): the mean over seeds of each seed's effect, its interval from their spread. None with
    fewer than two seeds (no spread)."""
    diff = 100 * diff.double()
    n, images = diff.shape
    if n < 2:
        return None
    var_test = diff.mean(0).var(unbiased=True).item() / images if images > 1 else 0.0
    return from_per_seed(diff.mean(1).tolist(), images, method, var_test)


def from_per_seed(per_seed: list[float], images: int, method: str, var_test: float = 0.0) -> Effect | None:
    """The effect, its interval (Student's t, n - 1 degrees of freedom) and the smallest effect it could find, from
    the per-seed effects (points) alone: what a report's JSON records is enough to compute it again. ``var_test``,
    the test images' sampling error of the mean over seeds, is recorded, not added (the seeds' spread holds it)."""
    n = len(per_seed)
    if n < 2:
        return None
    values = torch.tensor(per_seed, dtype=torch.float64)
    var_seeds = values.var(unbiased=True).item() / n
    se, df, effect = math.sqrt(var_seeds), n - 1, values.mean().item()
    if se == 0:  # every seed gave the same effect (a few images, or none differing): the spread is not measured
        inf = math.inf
        return Effect(effect, -inf, inf, inf, list(per_seed), method, n, images, se=inf, df=df, var_test=var_test)
    half = _t(0.5 + LEVEL / 2, df) * se
    detectable = (_t(0.5 + LEVEL / 2, df) + _t(POWER, df)) * se
    return Effect(
        effect, effect - half, effect + half, detectable, list(per_seed), method, n, images,
        se=se, df=df, var_seeds=var_seeds, var_test=var_test,
    )  # fmt: skip


def between_nets(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> Effect | None:
    """How much lower net a's error is than net b's: ``wrong_*`` are seeds x images (1 where the net is wrong), the
    same images for both, seed s of a against seed s of b. None with fewer than two seeds."""
    return across_seeds(wrong_b.double() - wrong_a.double())


def between_protocols(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> Effect | None:
    """How much lower protocol a's error is than protocol b's on the same nets and images (``wrong_*`` seeds x
    images): the seed is the unit, as for nets; each seed's paired McNemar interval over its images is kept as a
    description. None with fewer than two seeds."""
    diff = wrong_b.double() - wrong_a.double()
    found = across_seeds(diff, "seeds (paired protocols; test images in their spread)")
    if found is not None:
        for row in 100 * diff:
            m, half, _ = _mean_interval(row)
            found.per_seed_intervals.append([m - half, m + half])
    return found


def _mean_interval(values: torch.Tensor) -> tuple[float, float, float]:
    """Mean, the half-width of its interval and the smallest detectable mean, for per-image paired differences.
    Only images where the two differ carry information (McNemar): Student's t on their count keeps the interval at
    its level when they are few."""
    informative = int((values != 0).sum())
    se = values.std(unbiased=True).item() / math.sqrt(len(values))
    df = max(1, informative - 1)
    return values.mean().item(), _t(0.5 + LEVEL / 2, df) * se, (_t(0.5 + LEVEL / 2, df) + _t(POWER, df)) * se


def verdict(effect: Effect | None, no_better: bool = False) -> str:
    """The verdict on a finding from its effect's interval (*too few seeds* below :data:`MIN_SEEDS`). ``no_better``:
    the paper found a *not* better than b (the effect, a's improvement, should be below :data:`MARGIN`): the literal
    claim, non-superiority."""
    if effect is None or effect.seeds < MIN_SEEDS:
        return TOO_FEW
    return decide(effect, no_better)


def decide(effect: Effect, no_better: bool = False) -> str:
    """What the interval alone says, at any number of seeds (the calibration simulates it at two as well)."""
    if no_better:
        if effect.high < MARGIN:
            return HOLDS
        return CONTRADICTED if effect.low > 0 else NOT_RESOLVED
    if effect.low > 0:
        return HOLDS
    if effect.high < 0:
        return CONTRADICTED
    return NOT_RESOLVED


def p_value(effect: Effect | None, no_better: bool = False) -> float | None:
    """The p-value of a finding's decisive outcomes, so that its verdict is decisive exactly where p < 5 %: for a
    directional finding, the two-sided test of no effect; for a *no better* one, twice the smaller one-sided p of
    its two decisive outcomes (no improvement of :data:`MARGIN`; an improvement). None without a verdict."""
    if effect is None or effect.seeds < MIN_SEEDS:
        return None
    if effect.se == 0:
        return 0.0 if verdict(effect, no_better) in (HOLDS, CONTRADICTED) else 1.0
    if no_better:
        below = 1 - _cdf((MARGIN - effect.effect) / effect.se, effect.df)
        better = 1 - _cdf(effect.effect / effect.se, effect.df)
        return min(1.0, 2 * min(below, better))
    return min(1.0, 2 * (1 - _cdf(abs(effect.t), effect.df)))


def equivalence(effect: Effect | None, margin: float = EQUIVALENCE) -> dict[str, float | str] | None:
    """Two one-sided tests (TOST) that the effect lies within ``margin`` of 0: **holds** where the 90 % interval
    (each side at 5 %) lies inside (-margin, margin); **does not hold** where the 95 % interval lies wholly beyond
    one of them; else **not resolved**. None without a verdict (too few seeds)."""
    if effect is None or effect.seeds < MIN_SEEDS:
        return None
    t90 = _t(0.95, effect.df) if effect.se > 0 else 0.0
    low90, high90 = effect.effect - t90 * effect.se, effect.effect + t90 * effect.se
    if -margin < low90 and high90 < margin:
        outcome = HOLDS
    elif effect.low > margin or effect.high < -margin:
        outcome = DOES_NOT_HOLD
    else:
        outcome = NOT_RESOLVED
    if effect.se > 0:
        p = max(
            1 - _cdf((effect.effect + margin) / effect.se, effect.df),
            _cdf((effect.effect - margin) / effect.se, effect.df),
        )
    else:
        p = 0.0 if abs(effect.effect) < margin else 1.0
    return {"verdict": outcome, "margin": margin, "low90": low90, "high90": high90, "p": p}


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the findings' p-values judged together (None: a finding without a test,
    left out and left None). Adjusted p-values are monotone in the raw ones and never above 1."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m, running = len(tested), 0.0
    adjusted: list[float | None] = [None] * len(p_values)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def adjusted_verdict(raw: str, adjusted_p: float | None) -> str:
    """A decisive verdict stays only where its Holm-adjusted p-value is below 5 %."""
    if raw in (HOLDS, CONTRADICTED) and (adjusted_p is None or adjusted_p >= 1 - LEVEL):
        return NOT_RESOLVED
    return raw


def power_at(true_effect: float, se: float, df: float, no_better: bool = False, equivalent: bool = False) -> float:
    """The chance that a comparison with this standard error decides the paper's way where the true effect is
    ``true_effect``: a directional finding holds, a *no better* one holds (``no_better``), or near-equality is shown
    (``equivalent``, TOST within :data:`EQUIVALENCE`)."""
    if se <= 0:
        return 1.0
    if equivalent:
        t90 = _t(0.95, df)
        inside = _cdf((EQUIVALENCE - true_effect) / se - t90, df) + _cdf((EQUIVALENCE + true_effect) / se - t90, df) - 1
        return max(0.0, inside)
    crit = _t(0.5 + LEVEL / 2, df)
    if no_better:
        return _cdf((MARGIN - true_effect) / se - crit, df)
    return 1 - _cdf(crit - abs(true_effect) / se, df) if true_effect else 1 - LEVEL


def _se_at(effect: Effect, seeds: int) -> float:
    """The standard error this comparison would have with ``seeds`` seeds, at its per-seed spread."""
    return math.sqrt(effect.var_seeds * effect.seeds / seeds)


def seeds_for_power(effect: Effect | None, true_effect: float, no_better: bool = False, equivalent=False) -> int | None:
    """The fewest seeds (at least :data:`MIN_SEEDS`) that give :data:`POWER` at ``true_effect`` with this
    comparison's per-seed spread; None beyond :data:`MAX_SEEDS`, or where the spread is not measured (fewer than
    :data:`MIN_SEEDS` seeds: one degree of freedom says little about it)."""
    if effect is None or effect.var_seeds == 0 or effect.seeds < MIN_SEEDS:
        return None
    for n in range(MIN_SEEDS, MAX_SEEDS + 1):
        if power_at(true_effect, _se_at(effect, n), n - 1, no_better, equivalent) >= POWER:
            return n
    return None


# -- how often runs fail -------------------------------------------------------------------------------------------
def wilson(failed: int, runs: int) -> tuple[float, float]:
    """Wilson's 95 % interval of a share (``failed`` of ``runs``), in percent."""
    if runs == 0:
        return 0.0, 100.0
    z = _normal_quantile(0.5 + LEVEL / 2)
    p = failed / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def share_difference(failed_a: int, runs_a: int, failed_b: int, runs_b: int) -> tuple[float, float, float, float]:
    """How much more often ``a`` fails than ``b``, in points: (difference, low, high, p). The interval is Newcombe's
    (from the two Wilson intervals), p Fisher's exact two-sided test."""
    from scipy.stats import fisher_exact

    pa, pb = 100 * failed_a / runs_a, 100 * failed_b / runs_b
    (la, ha), (lb, hb) = wilson(failed_a, runs_a), wilson(failed_b, runs_b)
    diff = pa - pb
    low = diff - math.sqrt((pa - la) ** 2 + (hb - pb) ** 2)
    high = diff + math.sqrt((ha - pa) ** 2 + (pb - lb) ** 2)
    table = [[failed_a, runs_a - failed_a], [failed_b, runs_b - failed_b]]
    return diff, low, high, float(fisher_exact(table).pvalue)
