"""The rule that judges each of the paper's findings: an effect, its 95 % confidence interval and a verdict.

Effects are in points of top-1 error, positive in the direction the paper found (``a`` has the lower error). Two
comparisons, as the data allow:

- **Net against net** (:func:`between_nets`): two nets trained with the same seeds, tested on the same images. The
  effect is the mean over seeds of the per-seed differences. Its uncertainty has two parts: training noise (the
  spread of the per-seed differences, over the number of seeds) and the test set's own sampling error (the spread of
  the per-image differences, averaged over seeds, over the number of images: another test set would give other
  numbers). Their sum is the variance of the effect; the interval uses Student's t with Welch-Satterthwaite's degrees
  of freedom. One seed cannot measure training noise: such a comparison is not testable here.
- **Protocol against protocol on the same nets** (:func:`between_protocols`): per image and seed, whether each
  protocol is right. Per seed, the paired difference (McNemar's discordant pairs) with its normal interval; combined,
  the per-image differences averaged over seeds, with the interval of their mean over images. It holds for these
  trained nets; it says nothing of training noise, which both protocols share.

Verdicts: **holds** where the interval excludes 0 in the paper's direction, **contradicted** where it excludes 0 the
other way, **not resolved** where it includes 0 (with the smallest effect the comparison could have found: 80 %
power at the 5 % level). A finding that one thing is *no better* than another (LRN, E against D) holds only where the
interval excludes an improvement as large as :data:`MARGIN`, the paper's smallest reported gain, and is contradicted
where it shows an improvement. A finding whose protocol cannot mean here what it meant in the paper is
**not testable here**, with the reason; so is one the data cannot measure (a single seed of a net).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

HOLDS, CONTRADICTED, NOT_RESOLVED, NOT_TESTABLE = "holds", "contradicted", "not resolved", "not testable here"
# The paper's smallest reported gain, in points of top-1 error: multi-crop over dense evaluation (Table 5, 24.8 to
# 24.6) and D at S = 384 over S = 256 (Table 3, 27.0 to 26.8).
MARGIN = 0.2
LEVEL = 0.95
POWER = 0.80


@dataclass
class Effect:
    """One comparison: the effect (points of top-1 error, positive in the paper's direction), its interval, the
    smallest effect it could have found, the per-seed effects and how they were computed."""

    effect: float
    low: float
    high: float
    detectable: float
    per_seed: list[float]
    method: str
    seeds: int
    images: int
    per_seed_intervals: list[list[float]] = field(default_factory=list)


def _t(q: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def between_nets(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> Effect | None:
    """How much lower net a's error is than net b's: ``wrong_*`` are seeds x images (1 where the net is wrong), the
    same images for both, seed s of a against seed s of b. None with one seed (training noise unmeasured)."""
    a, b = wrong_a.double(), wrong_b.double()
    n, images = a.shape
    diff = b - a  # per seed and image, positive where a is right and b is not
    per_seed = 100 * diff.mean(1)
    if n < 2:
        return None
    var_seeds = per_seed.var(unbiased=True).item() / n
    var_test = (100 * diff.mean(0)).var(unbiased=True).item() / images
    se = math.sqrt(var_seeds + var_test)
    effect = per_seed.mean().item()
    if se == 0:
        return Effect(effect, effect, effect, 0.0, per_seed.tolist(), "seeds + test images", n, images)
    # Welch-Satterthwaite: the seeds' part has n - 1 degrees of freedom, the images' part images - 1
    df = se**4 / (var_seeds**2 / (n - 1) + var_test**2 / (images - 1))
    half = _t(0.5 + LEVEL / 2, df) * se
    detectable = (_t(0.5 + LEVEL / 2, df) + _t(POWER, df)) * se
    return Effect(effect, effect - half, effect + half, detectable, per_seed.tolist(), "seeds + test images", n, images)


def between_protocols(wrong_a: torch.Tensor, wrong_b: torch.Tensor) -> Effect:
    """How much lower protocol a's error is than protocol b's on the same nets and images: ``wrong_*`` seeds x
    images. Paired per image (McNemar's discordant pairs) per seed; combined, the per-image differences averaged
    over seeds."""
    a, b = wrong_a.double(), wrong_b.double()
    n, images = a.shape
    diff = 100 * (b - a)
    per_seed, intervals = [], []
    for row in diff:
        m, half, _ = _mean_interval(row)
        per_seed.append(m)
        intervals.append([m - half, m + half])
    effect, half, detectable = _mean_interval(diff.mean(0))
    return Effect(
        effect, effect - half, effect + half, detectable, per_seed, "paired over images", n, images, intervals
    )


def _mean_interval(values: torch.Tensor) -> tuple[float, float, float]:
    """Mean, the half-width of its interval and the smallest detectable mean, for per-image paired differences.
    Only images where the two differ carry information (McNemar): Student's t on their count keeps the rule at its
    level when they are few."""
    informative = int((values != 0).sum())
    se = values.std(unbiased=True).item() / math.sqrt(len(values))
    df = max(1, informative - 1)
    return values.mean().item(), _t(0.5 + LEVEL / 2, df) * se, (_t(0.5 + LEVEL / 2, df) + _t(POWER, df)) * se


def verdict(effect: Effect | None, no_better: bool = False) -> str:
    """The verdict on a finding from its effect's interval. ``no_better``: the paper found a *not* better than b
    (the effect, a's improvement, should be below :data:`MARGIN`)."""
    if effect is None:  # fewer than two seeds: no interval, so nothing this data can decide
        return NOT_TESTABLE
    if no_better:
        if effect.high < MARGIN:
            return HOLDS
        return CONTRADICTED if effect.low > 0 else NOT_RESOLVED
    if effect.low > 0:
        return HOLDS
    if effect.high < 0:
        return CONTRADICTED
    return NOT_RESOLVED


# -- the rule's calibration, on simulated data ------------------------------------------------------------------------
def simulate_nets(
    g: torch.Generator, seeds: int, images: int, shift_b: float = 0.0, seed_noise: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors (seeds x images) of two nets on the same test images: each image has its own difficulty
    (Beta(0.6, 3.5), a mean error of about 15 %), each trained net (seed) its own offset on the logit scale
    (``seed_noise``); ``shift_b`` makes net b worse by that much on the logit scale."""
    difficulty = torch.distributions.Beta(0.6, 3.5).sample((images,)).clamp(1e-4, 1 - 1e-4)
    logit = torch.log(difficulty / (1 - difficulty))

    def net(shift: float) -> torch.Tensor:
        offsets = seed_noise * torch.randn(seeds, 1, generator=g) + shift
        return torch.bernoulli(torch.sigmoid(logit + offsets), generator=g)

    return net(0.0), net(shift_b)


def simulate_protocols(
    g: torch.Generator, seeds: int, images: int, flip: float = 0.05, better: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two protocols on the same nets: b agrees with a except on a fraction ``flip`` of the images, where it is right
    or wrong at random, ``better`` tilting those towards b being wrong."""
    a = torch.bernoulli(torch.full((seeds, images), 0.15), generator=g)
    flips = torch.bernoulli(torch.full((seeds, images), flip), generator=g).bool()
    b = a.clone()
    b[flips] = torch.bernoulli(torch.full((int(flips.sum()),), 0.15 + better), generator=g)
    return a, b


def calibration(seeds: int, images: int, trials: int = 400, seed: int = 0) -> dict[str, float]:
    """How often the rule decides where there is no effect, and how often it finds one that is there, on data
    simulated at this reproduction's size (``seeds`` x ``images``). Deterministic for a given ``seed``."""
    torch.manual_seed(seed)  # the Beta sampler draws from the global generator
    g = torch.Generator().manual_seed(seed)
    seeds = max(2, seeds)
    null = [verdict(between_nets(*simulate_nets(g, seeds, images))) for _ in range(trials)]
    real = [between_nets(*simulate_nets(g, seeds, images, shift_b=0.5)) for _ in range(trials // 2)]
    paired = [verdict(between_protocols(*simulate_protocols(g, seeds, images))) for _ in range(trials)]
    return {
        "trials": trials,
        "nets_decisive_without_effect": sum(v != NOT_RESOLVED for v in null) / trials,
        "nets_effect": sum(e.effect for e in real) / len(real),
        "nets_found_with_effect": sum(verdict(e) == HOLDS for e in real) / len(real),
        "nets_detectable": sum(e.detectable for e in real) / len(real),
        "protocols_decisive_without_effect": sum(v != NOT_RESOLVED for v in paired) / trials,
    }
