"""``reproduce.json``: every number ``reproduce.md`` prints, and more: the settings, each run's per-epoch learning
rate and validation error with how much its last epoch still gained, every cell, decision and finding, how often
each net failed, the deviations from the paper, what each finding would need (seeds and machine-hours) and the time
training and evaluation took."""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..base.configs import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE
from ..base.hardware import cpu_description
from .findings import Finding, failures
from .results import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, PAPER_TABLE6, PROTOCOL_LABEL, Cell, Results
from .stats import EQUIVALENCE, LEVEL, MARGIN, POWER, calibration

LRN_CONSTANT = 2**-0.75  # what an LRN computes where alpha * sum(a^2) is negligible against k = 2: a mere rescaling


def report_data(results: Results, chosen: dict[str, Any], found: list[Finding]) -> dict[str, Any]:
    settings = results.settings
    protocols = [p for p in PROTOCOL_LABEL if "dense" not in p or results.dense_breaks("A_256") is None]
    pair = chosen["ensemble"]["pair"]
    return {
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "runs": {s.name: run_entry(results, s) for s in results.runs},
        "cells": {
            split: {m: {p: cell_entry(results.cell(m, p, split)) for p in protocols} for m in results.models}
            for split in ("val", "test")
        },
        "decisions": chosen,
        "ensemble": cell_entry(results.cell(pair[0], chosen["ensemble"]["protocol"], ensemble=pair[1:]))
        if len(pair) == 2
        else {},
        "findings": [f.to_dict() for f in found],
        "rule": rule(results),
        "deviations": deviations(results),
        "lrn": {
            "constants": {"size": LRN_SIZE, "alpha": LRN_ALPHA, "beta": LRN_BETA, "k": LRN_K},  # Caffe's, pixel units
            "constant_ratio": LRN_CONSTANT,
            "runs": lrn_runs(results),
        },
        "plateau": plateau(results),
        "stuck": {n: 100 * results.history(n)[-1]["val_top1_err"] for n in results.stuck() if results.history(n)},
        "failures": failures(results),
        "power": needs(results, found),
        "timing": timing(results),
        "paper": {"table3": PAPER_TABLE3, "table4": PAPER_TABLE4, "table5": PAPER_TABLE5, "table6": PAPER_TABLE6},
    }


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: strict JSON (RFC 8259) has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def rule(results: Results) -> dict[str, Any]:
    return {
        "unit": "seed",
        "alpha": round(1 - LEVEL, 4),
        "level": LEVEL,
        "power": POWER,
        "margin": MARGIN,
        "equivalence_margin": EQUIVALENCE,
        "adjustment": "Holm's step-down, over the findings of this report",
        "calibration": calibration(results.settings.seeds, results.test_images(), trials=1000),
    }


def cell_entry(cell: Cell) -> dict[str, Any]:
    return {
        "seeds": cell.seeds,
        "top1": cell.top1,
        "top5": cell.top5,
        "mean_top1": cell.mean,
        "mean_top5": statistics.mean(cell.top5) if cell.top5 else None,
    }


def last_epoch_gain(history: list[dict[str, float]]) -> float | None:
    """Points of validation error the run's last epoch gained (positive: it was still improving)."""
    errors = [h["val_top1_err"] for h in history if "val_top1_err" in h]
    return 100 * (errors[-2] - errors[-1]) if len(errors) > 1 else None


def run_entry(results: Results, spec: Any) -> dict[str, Any]:
    val = results.saved["val"].get(spec.name)
    meta = val["meta"] if val else {}
    history = meta.get("history", [])
    return {
        "model": spec.model,
        "seed": spec.seed,
        "tested": spec.name in results.saved["test"],
        "history": history,
        "train_seconds": meta.get("train_seconds"),
        "eval_seconds": sum(
            sum(results.saved[split][spec.name]["meta"].get("eval_seconds", {}).values())
            for split in ("val", "test")
            if spec.name in results.saved[split]
        ),
        "init": meta.get("config", {}).get("init"),
        "epochs": len(history),
        "decays": decays(history),
        "left_chance": results.left_chance(spec.name) if val else None,
        "last_epoch_gain": last_epoch_gain(history),
        "still_learning": still_learning(results, spec),
    }


def decays(history: list[dict[str, float]]) -> int:
    return sum(b["lr"] < a["lr"] for a, b in zip(history, history[1:]))


def still_learning(results: Results, spec: Any) -> bool | None:
    """Whether the run's last epoch still lowered its validation error by more than half the seeds' spread (the
    standard deviation of its model's last validation errors over the seeds): then it stopped before its plateau,
    and what it measures is partly how fast it learns. None where the spread is not measured (one seed)."""
    gain = last_epoch_gain(results.history(spec.name))
    last = [
        100 * results.history(s.name)[-1]["val_top1_err"]
        for s in results.specs(spec.model)
        if results.history(s.name) and results.left_chance(s.name)
    ]
    if gain is None or len(last) < 2:
        return None
    return gain > statistics.stdev(last) / 2


def lrn_runs(results: Results) -> dict[str, Any]:
    return {n: f["meta"]["lrn_ratio"] for n, f in results.saved["val"].items() if "lrn_ratio" in f["meta"]}


def plateau(results: Results) -> dict[str, Any]:
    """How the runs ended: divided by the plateau rule, or only by the final stage at the budget's end; the runs
    still learning at their last epoch; the median of their last epochs' gains."""
    s = results.settings
    entries = [run_entry(results, spec) for spec in results.runs if spec.name in results.saved["val"]]
    histories = [e["history"] for e in entries if e["history"]]
    forced = 0
    for spec in results.runs:
        rows = results.history(spec.name)
        drops = [i for i, (a, b) in enumerate(zip(rows, rows[1:]), 1) if b["lr"] < a["lr"]]
        final = min(s.final_epochs, spec.epochs - 1)
        forced += bool(drops) and final > 0 and drops[0] == spec.epochs - final
    gains = [e["last_epoch_gain"] for e in entries if e["last_epoch_gain"] is not None and e["left_chance"]]
    return {
        "runs": len(histories),
        "runs_with_a_decay": sum(decays(h) > 0 for h in histories),
        "runs_decayed_by_the_rule": sum(decays(h) > 0 for h in histories) - forced,
        "runs_decayed_only_at_the_budget": forced,
        "runs_still_learning": sorted(n for n, e in zip(results.saved["val"], entries) if e["still_learning"]),
        "median_last_epoch_gain": statistics.median(gains) if gains else None,
    }


def timing(results: Results) -> dict[str, Any]:
    train = sum(f["meta"].get("train_seconds", 0.0) for f in results.saved["val"].values())
    evals = sum(sum(f["meta"].get("eval_seconds", {}).values()) for s in results.saved.values() for f in s.values())
    return {
        "train_minutes": train / 60,
        "eval_minutes": evals / 60,
        "eval_share": evals / (train + evals) if train + evals else 0.0,
        "runs_tested": len(results.saved["test"]),
        "cpu": results.cpu or cpu_description(),
    }


def lineage(results: Results, model: str) -> list[str]:
    """The models a model's runs need, itself included: the nets it starts from, back to random weights."""
    specs = results.specs(model)
    if not specs or not specs[0].init_from:
        return [model] if specs else []
    parent = specs[0].init_from.rsplit("_seed", 1)[0]
    return [*lineage(results, parent), model]


def seed_minutes(results: Results, models: list[str]) -> float | None:
    """Minutes one seed of these models took here (training and evaluation, the mean over the seeds run)."""
    per_model = []
    for model in dict.fromkeys(m for x in models for m in lineage(results, x)):
        done = [run_entry(results, s) for s in results.specs(model) if s.name in results.saved["val"]]
        if not done:
            return None
        per_model.append(statistics.mean((e["train_seconds"] or 0) + e["eval_seconds"] for e in done) / 60)
    return sum(per_model) if per_model else None


def needs(results: Results, found: list[Finding]) -> list[dict[str, Any]]:
    """What each finding would need for 80 % power at the paper's effect: seeds, and machine-hours at the minutes
    one seed of its runs took here (run one at a time)."""
    rows = []
    for f in found:
        models = [m for m in (*f.a.split(" + "), f.b) if results.specs(m)]
        minutes = seed_minutes(results, models) if models else None
        seeds = f.seeds_for_power
        close = f.equivalence or {}
        rows.append(
            {
                "claim": f.claim,
                "seeds_now": f.seeds,
                "power_at_paper": f.power_at_paper,
                "seeds_for_power": seeds,
                "minutes_per_seed": minutes,
                "machine_hours": seeds * minutes / 60 if seeds and minutes else None,
                "equivalence_seeds_for_power": close.get("seeds_for_power"),
            }
        )
    return rows


def deviations(results: Results) -> list[dict[str, str]]:
    """Every way this reproduction differs from the paper, from the settings and the runs' own records."""
    s, geo = results.settings, results.geometry
    inits = sorted({e for e in (run_entry(results, r)["init"] for r in results.runs) if e})
    grey = s.main_data in ("fashion-mnist", "fashion-mnist-scaled")
    rows = [
        (
            "data, nets' findings",
            "ILSVRC-2012: 1.28 M training images, 50 k validation (its test)",
            f"{s.main_data}: {f'a balanced subset of {s.subset:,}' if s.subset else 'its'} training images (less "
            f"{s.val_split:,} held out for decisions); its test set",
        ),
        ("data, scale findings", "the same", s.scale_data),
        (
            "crop, widths",
            "224; 64-512 channels, fc 4096",
            f"{s.crop} ({geo.paper(s.crop)}); width x{s.width:g}, fc {s.head_width}",
        ),
        ("maps of blocks 3-5", "56, 28, 14 pixels", ", ".join(map(str, geo.block_sizes()[2:])) + " pixels"),
        (
            "1x1 against 3x3 (C against D)",
            "tested",
            f"not testable: {b}" if (b := geo.one_by_one_breaks()) else "tested",
        ),
        (
            "colour shift",
            "AlexNet's PCA colour shift",
            "none: grey images, one channel" if grey else "AlexNet's PCA colour shift (std 0.1)",
        ),
        (
            "initialisation",
            "net A N(0, 0.01); B-E: A's layers, the rest N(0, 0.01)",
            f"{', '.join(inits) or s.init_scheme} (net A and every layer not copied)",
        ),
    ]
    return [{"what": w, "paper": p, "here": h} for w, p, h in rows + procedure(results)]


def procedure(results: Results) -> list[tuple[str, str, str]]:
    """The deviations in how the nets were trained, decided on and evaluated."""
    s = results.settings
    epochs_a = [len(results.history(r.name)) for r in results.specs("A_256") if results.history(r.name)]
    rows = [
        ("batch", "256", str(s.batch_size)),
        ("epochs", "74", f"at most {s.epochs} ({s.stage_epochs} for the large-S and jittered stages)"),
        (
            "schedule",
            "the rate divided by 10 at plateaus of the validation accuracy, three times",
            f"the rate divided by 10 after {s.patience} epoch(s) without improvement; a run ends at the plateau "
            f"after its division number {s.decays}, or at its budget, and one whose rate was never divided ends with "
            f"{s.final_epochs} epochs at a tenth",
        ),
        (
            "epochs B-E inherit",
            "those of net A (pre-initialised from it)",
            f"{statistics.mean(epochs_a):.1f} of net A's (the mean), through its copied layers"
            if epochs_a and not s.batch_norm
            else "none (BN nets from scratch)"
            if s.batch_norm
            else "net A's",
        ),
        (
            "decisions (plateau, S, ensemble)",
            "ILSVRC's validation set, also reported on",
            f"{s.val_split:,} held-out training images, centre crop; test set only reported",
        ),
        ("scale nets", "C, D, E", ", ".join(s.scale_nets)),
        ("seeds", "one net of each", f"{s.seeds} of the nets, {s.seeds_of_scales} of the training scales"),
        ("batch normalisation", "none", "after every convolution, every net from scratch" if s.batch_norm else "none"),
    ]
    breaks = results.dense_breaks("A_256")
    return rows + [
        ("dense evaluation", "the crop is 7 strides", f"not testable: {breaks}" if breaks else "as the paper")
    ]
