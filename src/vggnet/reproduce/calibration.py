"""How often the verdict rule (:mod:`vggnet.reproduce.stats`) decides where there is no effect, simulated at a
finding's own number of seeds and test images, so that each finding's verdict is printed beside the rate at which
its rule would have decided by chance; and how often it finds an effect that is there.

Simulated nets: each test image has its own difficulty (Beta(0.6, 3.5), a mean error of about 15 %), each trained
net (seed) its own offset on the logit scale; simulated protocols agree with each other except on a few images,
where each net may lean its own way (a seed-by-protocol interaction). The simulation draws whole batches of trials
at once (numpy, seeded: the same numbers on every machine), and each trial is judged by the rule itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .stats import NOT_RESOLVED, decide, from_per_seed

TRIALS = 1000
CHUNK = 10_000_000  # values drawn at once (seeds x images x trials): about a hundred MB


def simulate_nets(
    rng: np.random.Generator, seeds: int, images: int, shift_b: float = 0.0, seed_noise: float = 0.15, trials: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors (trials x seeds x images; seeds x images where ``trials`` is 1) of two nets on the same test images;
    ``shift_b`` makes net b worse by that much on the logit scale."""
    difficulty = rng.beta(0.6, 3.5, size=(trials, 1, images)).clip(1e-4, 1 - 1e-4)
    logit = np.log(difficulty / (1 - difficulty))

    def net(shift: float) -> np.ndarray:
        offsets = seed_noise * rng.standard_normal((trials, seeds, 1)) + shift
        return rng.random((trials, seeds, images)) < 1 / (1 + np.exp(-(logit + offsets)))

    return _out(net(0.0), trials), _out(net(shift_b), trials)


def simulate_protocols(
    rng: np.random.Generator,
    seeds: int,
    images: int,
    flip: float = 0.05,
    better: float = 0.0,
    interaction: float = 0.0,
    trials: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two protocols on the same nets: b agrees with a except on a fraction ``flip`` of the images, where it is right
    or wrong at random, ``better`` tilting those towards b being wrong; ``interaction``: each seed's net tilts them
    by its own amount too (standard deviation ``interaction``, mean 0)."""
    shape = (trials, seeds, images)
    a = rng.random(shape) < 0.15
    flips = rng.random(shape) < flip
    tilt = (0.15 + better + interaction * rng.standard_normal((trials, seeds, 1))).clip(0.0, 1.0)
    b = np.where(flips, rng.random(shape) < tilt, a)
    return _out(a, trials), _out(b, trials)


def _out(wrong: np.ndarray, trials: int) -> torch.Tensor:
    found = torch.from_numpy(wrong.astype(np.float32))
    return found[0] if trials == 1 else found


def per_seed_effects(kind: str, seeds: int, images: int, trials: int, rng: np.random.Generator, **how: Any):
    """Per trial, the per-seed effects (points) of a simulated comparison: ``kind`` ``nets`` or ``protocols``."""
    simulate = simulate_nets if kind == "nets" else simulate_protocols
    step = max(1, CHUNK // max(1, seeds * images))
    found = []
    for start in range(0, trials, step):
        a, b = simulate(rng, seeds, images, trials=min(step, trials - start), **how)
        a, b = (a, b) if a.dim() == 3 else (a[None], b[None])
        found.append(100 * (b.double() - a.double()).mean(2))  # b's errors less a's: a's gain, per seed
    return torch.cat(found)


def decisive_share(kind: str, seeds: int, images: int, trials: int, seed: int, **how: Any) -> float:
    """The share of simulated comparisons on which the rule's interval is decisive (directional)."""
    rng = np.random.default_rng(seed)
    rows = per_seed_effects(kind, seeds, images, trials, rng, **how)
    return sum(decide(from_per_seed(r.tolist(), images, "")) != NOT_RESOLVED for r in rows) / trials


@lru_cache(maxsize=64)
def calibrate(kind: str, seeds: int, images: int, trials: int = TRIALS, seed: int = 0) -> dict[str, Any]:
    """How often the rule's interval decides without an effect at ``seeds`` seeds and ``images`` test images (for
    protocols also where the protocol's effect differs from net to net, with no mean effect). At fewer than
    :data:`~vggnet.reproduce.stats.MIN_SEEDS` seeds the rule gives no verdict; the rate is the interval's alone."""
    found = {"kind": kind, "seeds": seeds, "images": images, "trials": trials}
    found["decisive_without_effect"] = decisive_share(kind, seeds, images, trials, seed)
    if kind == "protocols":
        found["decisive_with_interaction"] = decisive_share(kind, seeds, images, trials, seed + 1, interaction=0.1)
    return found


def finds_an_effect(seeds: int, images: int, trials: int = TRIALS, seed: int = 0) -> dict[str, float]:
    """How often the rule finds a difference between nets that is there (net b worse by 0.5 on the logit scale),
    and that difference in points."""
    rng = np.random.default_rng(seed)
    rows = per_seed_effects("nets", seeds, images, trials, rng, shift_b=0.5)
    found = [decide(from_per_seed(r.tolist(), images, "")) for r in rows]
    return {"seeds": seeds, "effect": rows.mean().item(), "found": sum(v == "holds" for v in found) / trials}
