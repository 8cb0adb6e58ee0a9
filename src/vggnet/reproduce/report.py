"""The report of a reproduction: the paper's Tables 3-6 beside ours, every decision and the data it was taken on,
each of the paper's findings with its effect, interval, verdict and Holm-adjusted verdict
(:mod:`vggnet.reproduce.findings`), how often each net failed, what each finding would need, the deviations from the
paper, and a figure. ``reproduce.json`` (:mod:`vggnet.reproduce.record`) holds every number ``reproduce.md`` prints,
and more (each run's per-epoch validation error and learning rate).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from ..base.files import atomic_write, atomic_write_text
from .findings import Finding, findings
from .plan import KINDS, LETTERS, TABLE5, RunSpec, Settings, judged_by
from .record import LRN_CONSTANT, json_safe, report_data
from .results import (
    DECIDE,
    PAPER_TABLE3,
    PAPER_TABLE4,
    PAPER_TABLE5,
    PAPER_TABLE6,
    PROTOCOL_LABEL,
    Cell,
    Results,
    decisions,
)
from .stats import EQUIVALENCE, LEVEL, MARGIN, NOT_TESTABLE, POWER


def show(cell: Cell) -> str:
    if not cell.top1:
        return "—"
    spread = f" ({min(cell.top1):.2f}–{max(cell.top1):.2f})" if len(cell.top1) > 1 else ""
    return f"{cell.mean:.2f} / {statistics.mean(cell.top5):.2f}{spread}"


def paper_cell(value: tuple[float, float] | None) -> str:
    return f"{value[0]} / {value[1]}" if value else "—"


def model_label(results: Results, model: str) -> str:
    """``D/S=48 (384)``: the net, its training scale in the miniature's pixels and the paper's."""
    letter, kind = model.split("_")[:2]
    return f"{letter}/{results.geometry.label(kind)}"


# -- tables -----------------------------------------------------------------------------------------------------------
def table_nets(results: Results, protocol: str) -> list[str]:
    """Table 3's nets at the small S, on the main data."""
    lines = [
        f"| net | paper, S=256 | here, {results.geometry.label('256')}: test | validation |",
        "|---|---|---|---|",
    ]
    for letter in LETTERS:
        m = f"{letter}_256"
        test, val = results.cell(m, protocol), results.cell(m, protocol, "val")
        lines.append(f"| {letter} | {paper_cell(PAPER_TABLE3.get(m))} | {show(test)} | {show(val)} |")
    return lines


def table_scales(results: Results, protocol: str, suffix: str) -> list[str]:
    """Table 3's training scales, on the data with scale."""
    geo = results.geometry
    heads = " | ".join(f"paper {k} | here {geo.label(k)}" for k in ("256", "384", "jitter"))
    lines = [f"| net | {heads} |", "|---|" + "---|---|" * len(KINDS)]
    for letter in results.settings.scale_nets:
        cells = []
        for kind in KINDS:
            cells += [
                paper_cell(PAPER_TABLE3.get(f"{letter}_{kind}")),
                show(results.cell(f"{letter}_{kind}{suffix}", protocol)),
            ]
        lines.append(f"| {letter} | " + " | ".join(cells) + " |")
    return lines


def table_multiscale(results: Results, family: str, suffix: str) -> list[str]:
    lines = ["| net | paper, 3 Q (Table 4) | here, 1 Q | here, 3 Q |", "|---|---|---|---|"]
    for letter in results.settings.scale_nets:
        for kind in KINDS:
            m = f"{letter}_{kind}{suffix}"
            one, three = results.cell(m, f"{family}@1"), results.cell(m, family)
            paper = paper_cell(PAPER_TABLE4.get(f"{letter}_{kind}"))
            lines.append(f"| {model_label(results, m)} | {paper} | {show(one)} | {show(three)} |")
    return lines


def table_crops(results: Results, suffix: str) -> list[str]:
    protocols = ("dense", "multicrop", "dense+multicrop")
    heads = " | ".join(f"paper {PROTOCOL_LABEL[p]} | here" for p in protocols)
    lines = [f"| net | {heads} |", "|---|" + "---|---|" * len(protocols)]
    for letter in (x for x in TABLE5 if x in results.settings.scale_nets):
        m = f"{letter}_jitter{suffix}"
        cells = []
        for p in protocols:
            here = NOT_TESTABLE if "dense" in p and results.dense_breaks(m) else show(results.cell(m, p))
            cells += [paper_cell(PAPER_TABLE5[f"{letter}_jitter"].get(p)), here]
        lines.append(f"| {model_label(results, m)} | " + " | ".join(cells) + " |")
    return lines


def table_ensemble(results: Results, chosen: dict[str, Any]) -> list[str]:
    ens = chosen["ensemble"]
    lines = [f"| nets | protocol | validation ({PROTOCOL_LABEL[DECIDE]}, decides) | test |", "|---|---|---|---|"]
    if len(ens["pair"]) < 2:
        return lines + ["| (fewer than two nets evaluated) | | | |"]
    label = PROTOCOL_LABEL[ens["protocol"]]
    for m in ens["pair"]:
        lines.append(
            f"| {model_label(results, m)} | {label} | {ens['val_top1'][m]:.2f} | "
            f"{show(results.cell(m, ens['protocol']))} |"
        )
    both = results.cell(ens["pair"][0], ens["protocol"], ensemble=ens["pair"][1:])
    names = " + ".join(model_label(results, m) for m in ens["pair"])
    lines.append(f"| ensemble {names}, each member from another seed | {label} | | {show(both)} |")
    paper = PAPER_TABLE6["D+E, multi-crop & dense"]
    return lines + [f"| paper: D + E, S∈[256,512], multi-crop & dense | | | {paper_cell(paper)} |"]


def pct(value: float | None, digits: int = 0) -> str:
    return f"{100 * value:.{digits}f} %" if value is not None else "—"


def finding_lines(found: list[Finding]) -> list[str]:
    lines = [
        "| finding | data | protocol | seeds | effect here [95 % CI] | per seed | smallest detectable | decisive "
        "without an effect at these seeds (simulated) | paper (scaled to this error) | power: paper's / scaled "
        "effect | verdict | after Holm's adjustment |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in found:
        e = f.effect
        here = f"{e.effect:+.2f} [{e.low:+.2f}, {e.high:+.2f}]" if e else "—"
        seeds = ", ".join(f"{v:+.2f}" for v in e.per_seed) if e else "—"
        detectable = f"{e.detectable:.2f}" if e and f.kind != "failures" else "—"
        protocol = " against ".join(PROTOCOL_LABEL.get(p, p) for p in f.protocol.split(" vs "))
        note = f" ({f.reason})" if f.reason else ""
        paper = f"{f.paper:+.2f}" if f.paper is not None else "—"
        paper += f" ({f.scaled:+.2f})" if f.scaled is not None else ""
        chance = pct(f.calibration["decisive_without_effect"], 1) if f.calibration else "—"
        power = "—" if f.power_at_paper is None else f"{pct(f.power_at_paper)} / {pct(f.power_at_scaled)}"
        lines.append(
            f"| {f.claim} | {f.data} | {protocol} | {f.seeds} | {here} | {seeds} | {detectable} | {chance} | {paper} "
            f"| {power} | **{f.line()}**{note} | {f.line(adjusted=True)} |"
        )
    return lines


# -- the report -------------------------------------------------------------------------------------------------------
def build_report(settings: Settings, runs: list[RunSpec]) -> tuple[str, dict[str, Any], Results]:
    results = Results(settings, runs)
    chosen = decisions(results)
    found = findings(results, chosen)
    data = report_data(results, chosen, found)
    return "\n".join(markdown(results, chosen, found, data)), data, results


DASH = (
    "A dash here and in Tables 4-6: not on the test set with that protocol, which is spent only on the nets a finding "
    "is judged on (the jittered nets, the fixed S chosen on validation, the ensemble's pair), or a net that never left "
    "chance in any seed."
)


def markdown(results: Results, chosen: dict[str, Any], found: list[Finding], data: dict[str, Any]) -> list[str]:
    settings = results.settings
    net = judged_by(settings, "nets") + "@1"
    family = judged_by(settings, "scales" if settings.separate_scale_runs else "nets")
    suffix = "_scaled" if settings.separate_scale_runs else ""
    t = data["timing"]
    return [
        f"# The paper's Tables 3-6 in miniature ({'BN' if settings.batch_norm else 'no BN'})",
        "",
        f"{t['runs_tested']} of {len(results.runs)} runs tested, {settings.seeds} seed(s) of the nets and "
        f"{settings.seeds_of_scales} of the training scales; training took {t['train_minutes']:.0f} min and "
        f"evaluation {t['eval_minutes']:.0f} min ({100 * t['eval_share']:.0f} % of the total; wall-clock, summed over "
        f"the runs) on {t['cpu']}. Errors are top-1 / top-5 (%) on the test set, the mean over seeds with the seeds' "
        f"range of top-1 in brackets; the paper's are on ILSVRC-2012 validation. Every decision was taken on "
        f"{chosen['data']}.",
        "",
        *deviation_lines(data["deviations"]),
        "",
        f"## Table 3: the nets at the small S ({settings.main_data}, {PROTOCOL_LABEL[net]})",
        "",
        *table_nets(results, net),
        "",
        f"## Table 3: training scales ({settings.scale_data}, {PROTOCOL_LABEL[family + '@1']})",
        "",
        *table_scales(results, family + "@1", suffix),
        "",
        DASH,
        "",
        f"## Table 4: multi-scale testing ({PROTOCOL_LABEL[family]} against {PROTOCOL_LABEL[family + '@1']})",
        "",
        *table_multiscale(results, family, suffix),
        "",
        "## Table 5: dense, multi-crop (5 x 5 crops x 2 flips per Q), and both",
        "",
        *table_crops(results, suffix),
        "",
        "## Table 6: an ensemble of the two best nets (chosen on validation)",
        "",
        *table_ensemble(results, chosen),
        "",
        "## The paper's findings, here",
        "",
        *rule_lines(data["rule"], found),
        "",
        *finding_lines(found),
        "",
        *lrn_lines(data["lrn"]),
        "",
        *plateau_lines(data["plateau"]),
        "",
        *failure_lines(data["failures"], data["stuck"]),
        "",
        "## What each finding would need",
        "",
        *power_lines(data["power"]),
        "",
        "![top-1 error by net and protocol](reproduce.png)",
        "",
    ]


def rule_lines(rule: dict[str, Any], found: list[Finding]) -> list[str]:
    effect = rule["finds_an_effect"]
    errors = [f.paper_error for f in found if f.paper_error]
    paper = f"{min(errors):.1f} to {max(errors):.1f} %" if errors else "—"
    lines = [
        "The seed (one trained net) is the unit of every finding. Effects are points of top-1 error in the paper's "
        "direction (positive: as the paper found), the mean over seeds of each seed's effect on the same test images, "
        f"with {100 * LEVEL:.0f} % intervals from the seeds' spread alone ({rule['interval']}: each seed's effect is "
        "measured on the same test images, so that spread already holds the test set's sampling error). **holds**: "
        "the interval excludes 0 in the paper's direction; **contradicted**: it excludes 0 the other way; **not "
        f"resolved**: it includes 0. No verdict below {rule['min_seeds']} seeds of both sides: *too few seeds* (the "
        "effect is shown for the record). Where there is no effect to judge, the report says why: *not testable "
        "here* (the miniature's geometry cannot pose the question), *not tested by design* (the plan leaves it out) "
        "or *not measured: N of M runs stalled*. A *no better* finding is judged twice: literally (it holds where "
        f"the interval excludes an improvement of {MARGIN} points, the paper's smallest reported gain) and as the "
        f"paper's near-equality (two one-sided tests within {EQUIVALENCE} points, the smallest gain between nets the "
        "paper reported). The findings are judged together: Holm's adjustment over this report's p-values gives each "
        f"an adjusted verdict. Power ({100 * POWER:.0f} % wanted) is given at two effects, each figure saying which: "
        f"the paper's own (ILSVRC points, at the paper's errors of {paper}), and the paper's scaled by the ratio of "
        "this data's error to the paper's (side b's error here over the paper's: the same relative effect). How often "
        f"the rule decides where there is no effect, on simulated data ({rule['calibration'][0]['trials']} trials at "
        f"each number of seeds, {rule['calibration'][0]['images']:,} test images; each finding's row gives it at "
        f"its own seeds), and it found a {effect['effect']:.2f}-point difference between nets in "
        f"{pct(effect['found'], 1)} of trials at {effect['seeds']} seeds:",
        "",
        "| seeds | nets | protocols | protocols whose effect differs from net to net |",
        "|---|---|---|---|",
    ]
    by = {(c["kind"], c["seeds"]): c for c in rule["calibration"]}
    for n in sorted({c["seeds"] for c in rule["calibration"]}):
        nets, protocols = by[("nets", n)], by[("protocols", n)]
        lines.append(
            f"| {n}{' (no verdict)' if n < rule['min_seeds'] else ''} | {pct(nets['decisive_without_effect'], 1)} | "
            f"{pct(protocols['decisive_without_effect'], 1)} | {pct(protocols['decisive_with_interaction'], 1)} |"
        )
    return lines


def lrn_lines(lrn: dict[str, Any]) -> list[str]:
    if not lrn["runs"]:
        return []
    lo = min(r["p01"] for r in lrn["runs"].values())
    hi = max(r["p99"] for r in lrn["runs"].values())
    return [
        f"LRN normalises: on validation images, A-LRN's norm1 / relu1_1 ranged {lo:.4f} to {hi:.4f} (1st to 99th "
        f"percentile over seeds), where a layer that only rescaled would give {LRN_CONSTANT:.4f} everywhere.",
    ]


def failure_lines(failed: dict[str, Any], stuck: dict[str, float]) -> list[str]:
    lines = [
        "Runs that never left chance (a last validation error not 5 points below chance) are failures: each is left "
        "out of every table and finding with the runs started from it, and counted here, per net and procedure "
        "(Wilson's 95 % interval).",
        "",
        "| model | procedure | data | runs | never left chance | share [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for model, f in failed.items():
        lines.append(
            f"| {model} | {f['procedure']} | {f['data']} | {f['runs']} | {f['failed']} | "
            f"{f['share']:.0f} % [{f['low']:.0f}, {f['high']:.0f}] |"
        )
    if stuck:
        lines += ["", "Left out (last validation error): " + ", ".join(f"{n} ({e:.2f} %)" for n, e in stuck.items())]
    return lines


def plateau_lines(plateau: dict[str, Any]) -> list[str]:
    still, gain = plateau["runs_still_learning"], plateau["median_last_epoch_gain"]
    budget, last_3 = plateau["first_rate_ended_by_budget"], plateau["median_last_3_gain_at_first_rate_ended_by_budget"]
    cut = (
        f"; in {len(budget)} of the {plateau['runs_left_chance']} runs that left chance the budget ended it (the first "
        f"rate's cap, or the final stage), not the rule: " + ", ".join(budget)
        if budget
        else f"; in none of the {plateau['runs_left_chance']} runs that left chance did the budget end it"
    )
    return [
        f"How the runs ended: the plateau rule ended the first rate in {plateau['runs_decayed_by_the_rule']} of "
        f"{plateau['runs']} runs{cut}"
        + (f" (their last 3 epochs at it gained a median {last_3:+.2f} points)" if last_3 is not None else "")
        + ". Their last epochs gained a median "
        + (f"{gain:+.2f} points of validation error" if gain is not None else "— (no run)")
        + (
            f"; {len(still)} still gained more than half their seeds' spread: " + ", ".join(still)
            if still
            else "; none still gained more than half its seeds' spread"
        )
        + " (each run's per-epoch rate and validation error are in reproduce.json).",
    ]


def power_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Seeds for 80 % power, from each finding's per-seed spread here, at the paper's effect and at the paper's "
        "scaled to this data's error, and what they would cost on this machine (its runs' measured minutes per seed, "
        "run one at a time; `vggnet reproduce --plan --power FOLDER` prints it for any folder). A *no better* finding "
        "has a row for each reading. No figure below 3 seeds: a spread from one degree of freedom says little.",
        "",
        "| finding | reading | seeds here | power now: paper's effect | scaled | seeds for 80 %: paper's effect | "
        "scaled | minutes per seed | machine-hours: paper's effect | scaled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [pct(r["power_at_paper"]), pct(r["power_at_scaled"])]
        for key, power in (("seeds_for_power", "power_at_paper"), ("seeds_for_power_scaled", "power_at_scaled")):
            need = r[key]
            cells.append(str(need) if need else ("more than 1000" if r[power] is not None else "—"))
        cells.append(f"{r['minutes_per_seed']:.1f}" if r["minutes_per_seed"] else "—")
        cells += [f"{r[k]:.1f}" if r[k] else "—" for k in ("machine_hours", "machine_hours_scaled")]
        lines.append(f"| {r['claim']} | {r['reading']} | {r['seeds_now']} | " + " | ".join(cells) + " |")
    return lines


def deviation_lines(rows: list[dict[str, str]]) -> list[str]:
    lines = ["| | paper | here |", "|---|---|---|"]
    return lines + [f"| {r['what']} | {r['paper']} | {r['here']} |" for r in rows]


def write_report(settings: Settings, runs: list[RunSpec]) -> list[Path]:
    """``reproduce.md``, ``reproduce.json`` and ``reproduce.png`` in the reproduction's folder."""
    from .figure import plot

    md, data, results = build_report(settings, runs)
    out = Path(settings.out)
    paths = [atomic_write_text(out / "reproduce.md", md)]
    paths.append(atomic_write_text(out / "reproduce.json", json.dumps(json_safe(data), indent=1, allow_nan=False)))
    paths.append(atomic_write(out / "reproduce.png", lambda tmp: plot(results, tmp)))
    return paths
