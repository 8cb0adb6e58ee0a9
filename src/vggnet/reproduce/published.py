"""A reproduction's report rebuilt from its published ``reproduce.json`` alone, without the run folders: the JSON
holds every run's record (history, timings, whether it left chance), every cell (per seed, top-1 and top-5) and each
finding's per-seed effects, which is all the tables, the verdicts, the power and the calibration need. The same code
that writes a report from the runs' posteriors (:func:`vggnet.reproduce.report.build_report`) then writes it from
the record (:class:`Published`, a :class:`~vggnet.reproduce.results.Results` read from the JSON), so that a change
of the rule or of the report republishes the runs already made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .plan import Settings, plan
from .recorded import backfilled
from .results import Cell, Results
from .stats import Effect, from_per_seed


def read_report(path: str | Path) -> dict[str, Any]:
    """A published report's JSON; a sentence where it does not read or is not a reproduction's report."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} does not read as a reproduction's report ({type(err).__name__}: {err})") from None
    missing = [k for k in ("settings", "runs", "cells", "decisions", "findings") if k not in (data or {})]
    if not isinstance(data, dict) or missing:
        raise ValueError(f"{path} is not a reproduction's report (it lacks {', '.join(missing) or 'a JSON object'})")
    return data


class Published(Results):
    """The runs of a published report, read from its JSON: the cells and the per-seed effects it recorded stand
    for the posteriors they were computed from."""

    def __init__(self, data: dict[str, Any]) -> None:
        known = {k: v for k, v in data["settings"].items() if k in Settings.__dataclass_fields__}
        settings = Settings(**backfilled(known))
        runs = plan(settings)
        recorded = data["runs"]
        if [r.name for r in runs] != list(recorded):
            extra = sorted(set(recorded) ^ {r.name for r in runs})
            raise ValueError(f"the report's runs are not its settings' plan (they differ in {', '.join(extra[:4])})")
        super().__init__(settings, runs, splits=())
        self.data = data
        self.cpu = data.get("timing", {}).get("cpu")
        lrn = data.get("lrn", {}).get("runs", {})
        for name, entry in recorded.items():
            if entry["left_chance"] is None:
                continue  # never trained nor validated
            meta = {
                "history": entry["history"],
                "train_seconds": entry["train_seconds"],
                "eval_seconds": {"recorded": entry["eval_seconds"]},  # both splits, summed as the report sums them
                "config": {"init": entry["init"]},
                **({"lrn_ratio": lrn[name]} if name in lrn else {}),
            }
            self.saved["val"][name] = {"meta": meta, "tensors": {}}
            if entry["tested"]:
                self.saved["test"][name] = {"meta": {}, "tensors": {}}

    def left_chance(self, run: str) -> bool:
        return bool(self.data["runs"][run]["left_chance"])

    def test_images(self) -> int:
        images = [f["effect"]["images"] for f in self.data["findings"] if f.get("effect") and f["kind"] != "failures"]
        return images[0] if images else 10_000

    def cell(self, model: str, protocol: str, split: str = "test", ensemble: Sequence[str] = ()) -> Cell:
        if ensemble:
            pair = self.data["decisions"]["ensemble"]["pair"]
            entry = self.data.get("ensemble") if [model, *ensemble] == pair else None
        else:
            entry = self.data["cells"][split].get(model, {}).get(protocol)
        return Cell(entry["seeds"], entry["top1"], entry["top5"]) if entry else Cell([], [], [])

    def measured(
        self, key: tuple[str, str, str], compute: Callable[[], tuple[int, Effect | None]]
    ) -> tuple[int, Effect | None]:
        """The finding ``key`` (a, b, protocol) as the report recorded it: its seeds and its per-seed effects,
        judged again by today's rule."""
        found = next((f for f in self.data["findings"] if (f["a"], f["b"], f["protocol"]) == key), None)
        if found is None:
            return self.from_cells(*key)
        e = found["effect"]
        if not e:
            return found["seeds"], None
        effect = from_per_seed(e["per_seed"], e["images"], e["method"], var_test=e.get("var_test", 0.0))
        effect.per_seed_intervals = e.get("per_seed_intervals", [])
        return found["seeds"], effect

    def from_cells(self, a: str, b: str, protocol: str) -> tuple[int, Effect | None]:
        """A comparison of nets the report did not judge (a finding added since), from its cells: each seed's
        effect is the difference of the two nets' top-1 errors on the same test images."""
        if " vs " in protocol or " + " in a:
            raise ValueError(f"the report records no finding of {a} against {b} ({protocol})")
        cell_a, cell_b = self.cell(a, protocol), self.cell(b, protocol)
        common = sorted(set(cell_a.seeds) & set(cell_b.seeds))
        per_seed = [cell_b.top1[cell_b.seeds.index(s)] - cell_a.top1[cell_a.seeds.index(s)] for s in common]
        return len(common), from_per_seed(per_seed, self.test_images(), "seeds (from the report's cells)")


def rebuild(path: str | Path) -> tuple[str, dict[str, Any], Published]:
    """The Markdown, the JSON and the results of a published report, written again from its JSON by today's code."""
    from .findings import findings
    from .record import report_data
    from .report import markdown
    from .results import decisions

    results = Published(read_report(path))
    chosen = decisions(results)
    found = findings(results, chosen)
    data = report_data(results, chosen, found)
    return "\n".join(markdown(results, chosen, found, data)), data, results
