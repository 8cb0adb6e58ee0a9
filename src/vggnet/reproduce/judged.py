"""One of the paper's findings as judged here (:class:`Finding`): its verdict, effect, p-value, the verdict after
Holm's adjustment, its calibration and its power at the paper's effect and at that effect scaled to this data's
error, and the words for the ways a finding can have no verdict. :mod:`vggnet.reproduce.findings` and
:mod:`vggnet.reproduce.stalls` judge them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .calibration import calibrate
from .stats import (
    HOLDS,
    MIN_SEEDS,
    NOT_TESTABLE,
    Effect,
    equivalence,
    p_value,
    power_at,
    seeds_for_power,
)

NOT_MEASURED, BY_DESIGN = "not measured", "not tested by design"
NO_VERDICT = (NOT_TESTABLE, BY_DESIGN, NOT_MEASURED)  # no effect to judge; TOO_FEW has one, shown for the record
FEW_SEEDS = f"fewer than {MIN_SEEDS} seeds of both sides; the effect is shown for the record"
PAPER_ENSEMBLE_MEMBER = 24.4  # the paper's better member of its ensemble (D, multi-crop & dense, Table 5)


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
    id: str = ""  # a short name the documents quote it by ("B-A", "lrn", "ensemble")
    paper_error: float | None = None  # the paper's top-1 error of side b (its baseline), ILSVRC points
    error_here: float | None = None  # side b's mean top-1 test error here, with the finding's protocol
    scaled: float | None = None  # the paper's effect times error_here / paper_error: its size in this data's units
    power_at_scaled: float | None = None
    seeds_for_power_scaled: int | None = None
    calibration: dict[str, Any] | None = None  # the rule's decisive rate without an effect, at these seeds
    stalled: list[int] | None = None  # [runs that never left chance (or started from one), runs it needs]

    def judge(self) -> Finding:
        """Fill in what follows from the effect: the p-value, the calibration at its seeds, power and seeds at the
        paper's effect and at its scaled effect, and for a *no better* finding the test of near-equality."""
        e = self.effect
        self.seeds = e.seeds if e else self.seeds
        if self.paper is not None and self.paper_error and self.error_here is not None:
            self.scaled = self.paper * self.error_here / self.paper_error
        if self.verdict in NO_VERDICT or e is None or self.kind == "failures":
            return self
        self.calibration = calibrate(self.kind, e.seeds, e.images)
        self.p = p_value(e, self.no_better)
        measured = e.seeds >= MIN_SEEDS and e.var_seeds > 0  # a spread to plan from
        if self.paper is not None and measured:
            self.power_at_paper = power_at(self.paper, e.se, e.df, self.no_better)
            self.seeds_for_power = seeds_for_power(e, self.paper, self.no_better)
        if self.scaled is not None and measured:
            self.power_at_scaled = power_at(self.scaled, e.se, e.df, self.no_better)
            self.seeds_for_power_scaled = seeds_for_power(e, self.scaled, self.no_better)
        if self.no_better:
            self.equivalence = equivalence(e)
            if self.equivalence is not None:
                for label, effect in (("paper", self.paper), ("scaled", self.scaled)):
                    if effect is not None:
                        self.equivalence[f"power_at_{label}"] = power_at(effect, e.se, e.df, equivalent=True)
                        self.equivalence[f"seeds_for_power{'_scaled' * (label == 'scaled')}"] = seeds_for_power(
                            e, effect, equivalent=True
                        )
        return self

    def line(self, adjusted: bool = False) -> str:
        """The verdict as the report prints it; a *no better* finding says both of its readings."""
        said = self.adjusted_verdict if adjusted else self.verdict
        if said == NOT_MEASURED and self.stalled:
            return f"{NOT_MEASURED}: {self.stalled[0]} of {self.stalled[1]} runs stalled"
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
