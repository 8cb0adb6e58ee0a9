"""The report of a reproduction: the paper's Tables 3-6 beside ours, every decision and the data it was taken on,
each of the paper's findings with its effect, interval and verdict (:mod:`vggnet.reproduce.stats`), the deviations
from the paper, and a figure. ``reproduce.json`` holds every number ``reproduce.md`` prints, and more (each run's
per-epoch validation error and learning rate).
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any

from ..files import atomic_write, atomic_write_text
from .plan import KINDS, LETTERS, TABLE5, RunSpec, Settings, judged_by
from .results import (
    PAPER_TABLE3,
    PAPER_TABLE4,
    PAPER_TABLE5,
    PAPER_TABLE6,
    PROTOCOL_LABEL,
    Cell,
    Finding,
    Results,
    decisions,
    findings,
)
from .stats import LEVEL, MARGIN, NOT_TESTABLE, POWER, calibration

LRN_CONSTANT = 2**-0.75  # what an LRN computes where alpha * sum(a^2) is negligible against k = 2: a mere rescaling


def show(cell: Cell) -> str:
    if not cell.top1:
        return "—"
    spread = f" ({min(cell.top1):.2f}–{max(cell.top1):.2f})" if len(cell.top1) > 1 else ""
    return f"{cell.mean:.2f} / {statistics.mean(cell.top5):.2f}{spread}"


def paper_cell(value: tuple[float, float] | None) -> str:
    return f"{value[0]} / {value[1]}" if value else "—"


def model_label(results: Results, model: str) -> str:
    """``D/S=48 (384)``: the net, its training scale in the miniature's pixels and the paper's."""
    spec = results.specs(model)[0]
    return f"{spec.letter}/{results.geometry.label(spec.kind)}"


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
    lines = ["| nets | protocol | validation (decides) | test |", "|---|---|---|---|"]
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
    lines.append(f"| ensemble {names} | {label} | | {show(both)} |")
    paper = PAPER_TABLE6["D+E, multi-crop & dense"]
    return lines + [f"| paper: D + E, S∈[256,512], multi-crop & dense | | | {paper_cell(paper)} |"]


def finding_lines(found: list[Finding]) -> list[str]:
    lines = [
        "| finding | data | protocol | effect here [95 % CI] | smallest detectable | per seed | paper | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in found:
        e = f.effect
        here = f"{e.effect:+.2f} [{e.low:+.2f}, {e.high:+.2f}]" if e else "—"
        seeds = ", ".join(f"{v:+.2f}" for v in e.per_seed) if e else "—"
        detectable = f"{e.detectable:.2f}" if e else "—"
        protocol = " against ".join(PROTOCOL_LABEL.get(p, p) for p in f.protocol.split(" vs "))
        note = f" ({f.reason})" if f.reason else ""
        paper = f"{f.paper:+.2f}" if f.paper is not None else "—"
        lines.append(
            f"| {f.claim} | {f.data} | {protocol} | {here} | {detectable} | {seeds} | {paper} | **{f.verdict}**{note} |"
        )
    return lines


# -- the report -------------------------------------------------------------------------------------------------------
def build_report(settings: Settings, runs: list[RunSpec]) -> tuple[str, dict[str, Any], Results]:
    results = Results(settings, runs)
    chosen = decisions(results)
    found = findings(results, chosen)
    data = report_data(results, chosen, found)
    return "\n".join(markdown(results, chosen, found, data)), data, results


def markdown(results: Results, chosen: dict[str, Any], found: list[Finding], data: dict[str, Any]) -> list[str]:
    settings = results.settings
    net = judged_by(settings, "nets") + "@1"
    family = judged_by(settings, "scales" if settings.separate_scale_runs else "nets")
    suffix = "_scaled" if settings.separate_scale_runs else ""
    t = data["timing"]
    return [
        f"# The paper's Tables 3-6 in miniature ({'BN' if settings.batch_norm else 'no BN'})",
        "",
        f"{t['runs_tested']} of {len(results.runs)} runs tested, {settings.seeds} seed(s); training took "
        f"{t['train_minutes']:.0f} min and evaluation {t['eval_minutes']:.0f} min (wall-clock, summed over the runs) "
        f"on {t['cpu']}. Errors are top-1 / "
        "top-5 (%) on the test set, the mean over seeds with the seeds' range of top-1 in brackets; the paper's are "
        f"on ILSVRC-2012 validation. Every decision was taken on {chosen['data']}.",
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
        *rule_lines(data["rule"]),
        "",
        *finding_lines(found),
        "",
        *lrn_lines(data["lrn"]),
        "",
        *plateau_lines(data["plateau"]),
        "",
        *stuck_lines(data["stuck"]),
        "",
        "![top-1 error by net and protocol](reproduce.png)",
        "",
    ]


def rule_lines(rule: dict[str, Any]) -> list[str]:
    c = rule["calibration"]
    null_nets, null_protocols = 100 * c["nets_decisive_without_effect"], 100 * c["protocols_decisive_without_effect"]
    return [
        f"Effects are points of top-1 error in the paper's direction (positive: as the paper found), with "
        f"{100 * LEVEL:.0f} % intervals. Nets against nets: across seeds, with the test set's sampling error added "
        "(Student's t, Welch-Satterthwaite). Protocols on the same nets: paired over the test images (McNemar's "
        "discordant pairs), per seed and combined. **holds**: the interval excludes 0 in the paper's direction; "
        "**contradicted**: it excludes 0 the other way; **not resolved**: it includes 0 (the smallest effect the "
        f"comparison could have found, {100 * POWER:.0f} % power, is given). A *no better* finding holds only where "
        f"the interval excludes an improvement of {MARGIN} points (the paper's smallest reported gain). On data "
        f"simulated at this size ({c['trials']} trials each), the rule decided {null_nets:.1f} % of net comparisons "
        f"and {null_protocols:.1f} % of protocol comparisons where there was no effect, and found a "
        f"{c['nets_effect']:.2f}-point difference between nets in {100 * c['nets_found_with_effect']:.1f} % of trials.",
    ]


def lrn_lines(lrn: dict[str, Any]) -> list[str]:
    if not lrn["runs"]:
        return []
    lo = min(r["p01"] for r in lrn["runs"].values())
    hi = max(r["p99"] for r in lrn["runs"].values())
    return [
        f"LRN normalises: on validation images, A-LRN's norm1 / relu1_1 ranged {lo:.4f} to {hi:.4f} (1st to 99th "
        f"percentile over seeds), where a layer that only rescaled would give {LRN_CONSTANT:.4f} everywhere.",
    ]


def stuck_lines(stuck: dict[str, Any]) -> list[str]:
    if not stuck:
        return ["Every run left chance (on its validation split)."]
    runs = ", ".join(f"{name} ({error:.2f} %)" for name, error in stuck.items())
    return [
        f"{len(stuck)} runs never left chance on their validation split, or started from one that did not, and are "
        f"left out of every table and finding (last validation error in brackets): {runs}. A finding is judged on "
        "the seeds where both of its sides trained; the per-seed column shows which."
    ]


def plateau_lines(plateau: dict[str, Any]) -> list[str]:
    return [
        f"The plateau rule divided the learning rate in {plateau['runs_with_a_decay']} of {plateau['runs']} runs "
        "(each run's per-epoch learning rate and validation error are in reproduce.json)."
    ]


def write_report(settings: Settings, runs: list[RunSpec]) -> list[Path]:
    """``reproduce.md``, ``reproduce.json`` and ``reproduce.png`` in the reproduction's folder."""
    from .figure import plot

    md, data, results = build_report(settings, runs)
    out = Path(settings.out)
    paths = [atomic_write_text(out / "reproduce.md", md)]
    paths.append(atomic_write_text(out / "reproduce.json", json.dumps(data, indent=1)))
    paths.append(atomic_write(out / "reproduce.png", lambda tmp: plot(results, tmp)))
    return paths


# -- the JSON ---------------------------------------------------------------------------------------------------------
def report_data(results: Results, chosen: dict[str, Any], found: list[Finding]) -> dict[str, Any]:
    settings = results.settings
    protocols = [p for p in PROTOCOL_LABEL if "dense" not in p or results.dense_breaks("A_256") is None]
    return {
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "runs": {s.name: run_entry(results, s) for s in results.runs},
        "cells": {
            split: {m: {p: cell_entry(results.cell(m, p, split)) for p in protocols} for m in results.models}
            for split in ("val", "test")
        },
        "decisions": chosen,
        "ensemble": cell_entry(
            results.cell(
                chosen["ensemble"]["pair"][0], chosen["ensemble"]["protocol"], ensemble=chosen["ensemble"]["pair"][1:]
            )
        )
        if len(chosen["ensemble"]["pair"]) == 2
        else {},
        "findings": [f.to_dict() for f in found],
        "rule": {
            "alpha": round(1 - LEVEL, 4),
            "level": LEVEL,
            "power": POWER,
            "margin": MARGIN,
            "calibration": calibration(settings.seeds, test_images(results), trials=1000),
        },
        "deviations": deviations(results),
        "lrn": {"constant_ratio": LRN_CONSTANT, "runs": lrn_runs(results)},
        "plateau": plateau(results),
        "stuck": {n: 100 * results.saved["val"][n]["meta"]["history"][-1]["val_top1_err"] for n in results.stuck()},
        "timing": timing(results),
        "paper": {"table3": PAPER_TABLE3, "table4": PAPER_TABLE4, "table5": PAPER_TABLE5, "table6": PAPER_TABLE6},
    }


def cell_entry(cell: Cell) -> dict[str, Any]:
    return {
        "seeds": cell.seeds,
        "top1": cell.top1,
        "top5": cell.top5,
        "mean_top1": cell.mean,
        "mean_top5": statistics.mean(cell.top5) if cell.top5 else None,
    }


def run_entry(results: Results, spec: RunSpec) -> dict[str, Any]:
    val = results.saved["val"].get(spec.name)
    meta = val["meta"] if val else {}
    return {
        "tested": spec.name in results.saved["test"],
        "history": meta.get("history", []),
        "train_seconds": meta.get("train_seconds"),
        "init": meta.get("config", {}).get("init"),
        "epochs": len(meta.get("history", [])),
    }


def test_images(results: Results) -> int:
    found = next(iter(results.saved["test"].values()), None)
    return int(found["tensors"]["labels"].numel()) if found else 10_000


def lrn_runs(results: Results) -> dict[str, Any]:
    return {n: f["meta"]["lrn_ratio"] for n, f in results.saved["val"].items() if "lrn_ratio" in f["meta"]}


def plateau(results: Results) -> dict[str, int]:
    runs = [f["meta"].get("history", []) for f in results.saved["val"].values()]
    decayed = sum(any(h["lr"] < rows[0]["lr"] for h in rows) for rows in runs if rows)
    return {"runs": sum(bool(rows) for rows in runs), "runs_with_a_decay": decayed}


def timing(results: Results) -> dict[str, Any]:
    train = sum(f["meta"].get("train_seconds", 0.0) for f in results.saved["val"].values())
    evals = sum(sum(f["meta"].get("eval_seconds", {}).values()) for s in results.saved.values() for f in s.values())
    return {
        "train_minutes": train / 60,
        "eval_minutes": evals / 60,
        "runs_tested": len(results.saved["test"]),
        "cpu": cpu_name(),
    }


def cpu_name() -> str:
    """This machine's CPU as a reader can place it: its name, family and model, cores, and its bf16 units."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return platform.processor() or platform.machine()
    text = info.read_text()
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    units = "AVX-512 with BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2"
    return (
        f"{text.count('processor')} cores of an {fields.get('model name', platform.machine())} (family "
        f"{fields.get('cpu family', '?')}, model {fields.get('model', '?')}, {units})"
    )


def deviations(results: Results) -> list[dict[str, str]]:
    """Every way this reproduction differs from the paper, from the settings and the runs' own records."""
    s, geo = results.settings, results.geometry
    inits = sorted({e["init"] for e in (run_entry(results, r) for r in results.runs) if e["init"]})
    first, stage = s.epochs, s.stage_epochs
    rows = [
        (
            "data, nets' findings",
            "ILSVRC-2012: 1.28 M training images, 50 k validation (its test)",
            f"{s.main_data}: its training images less {s.val_split:,} held out for decisions; its test set",
        ),
        ("data, scale findings", "the same", s.scale_data),
        (
            "crop, widths",
            "224; 64-512 channels, fc 4096",
            f"{s.crop} ({geo.paper(s.crop)}); width x{s.width:g}, fc {s.head_width}",
        ),
        (
            "initialisation",
            "net A N(0, 0.01); B-E: A's layers, the rest N(0, 0.01)",
            f"{', '.join(inits) or s.init_scheme} (net A and every layer not copied)",
        ),
        ("batch", "256", str(s.batch_size)),
        ("epochs", "74", f"{first} (the large-S and jittered stages {stage})" if not s.batch_norm else f"{first}"),
        (
            "epochs B-E inherit",
            "those of net A (pre-initialised from it)",
            f"{first} of net A's, through its copied layers" if not s.batch_norm else "none (BN nets from scratch)",
        ),
        (
            "decisions (plateau, S, ensemble)",
            "ILSVRC's validation set, also reported on",
            f"{s.val_split:,} held-out training images; test set only reported",
        ),
        ("scale nets", "C, D, E", ", ".join(s.scale_nets)),
        ("batch normalisation", "none", "after every convolution, every net from scratch" if s.batch_norm else "none"),
    ]
    breaks = results.dense_breaks("A_256")
    rows.append(("dense evaluation", "the crop is 7 strides", f"not testable: {breaks}" if breaks else "as the paper"))
    return [{"what": w, "paper": p, "here": h} for w, p, h in rows]


def deviation_lines(rows: list[dict[str, str]]) -> list[str]:
    lines = ["| | paper | here |", "|---|---|---|"]
    return lines + [f"| {r['what']} | {r['paper']} | {r['here']} |" for r in rows]
