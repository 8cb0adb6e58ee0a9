"""``reproduce.json``: every number ``reproduce.md`` prints, and more: the settings, each run's per-epoch learning
rate and validation error with how much its last epoch still gained, every cell, decision and finding, how often
each net failed, the deviations from the paper, what each finding would need (seeds and machine-hours) and the time
training and evaluation took."""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..base.configs import CONFIGS, LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE
from ..base.hardware import cpu_description
from ..network.layers import PREINIT_LAYERS
from .calibration import calibrate, finds_an_effect
from .deviations import deviations
from .findings import Finding, uncopied
from .geometry import STRIDE_CROPS
from .plan import DEEP, PAPER
from .recorded import command_line
from .results import CHANCE_MARGIN, PAPER_TABLES, PROTOCOL_LABEL, Cell, Results
from .stalls import failures
from .stats import EQUIVALENCE, LEVEL, MARGIN, MIN_SEEDS, POWER

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
        "rule": rule(results, found),
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
        "paper": {
            **PAPER_TABLES,
            "setup": {**{k: PAPER[k] for k in ("crop", "epochs", "batch_size", "decays")}, "init_std": 0.01},
        },
        "command": command_line(settings),
        "geometry": geometry(results),
        "preinit": {
            "copied": list(PREINIT_LAYERS),
            "random_convolutions": {x: uncopied(x) for x in DEEP},  # B-E's layers not copied from A
            "weight_layers": {x: convolutions(x) + 3 for x in CONFIGS},  # convolutions and FC layers
        },
        "fit": fit(results),
    }


def convolutions(letter: str) -> int:
    return sum(not isinstance(x, str) for x in CONFIGS[letter])


def fit(results: Results) -> dict[str, dict[str, float]]:
    """Per model, the mean over its runs that left chance of its last epoch's training and validation error
    (points): where they are equal the nets underfit (training error is measured with dropout and augmentation)."""
    found = {}
    for model in results.models:
        runs = [s.name for s in results.specs(model) if results.history(s.name) and results.left_chance(s.name)]
        last = [results.history(r)[-1] for r in runs]
        if last:
            found[model] = {k: 100 * statistics.mean(h[f"{k}_top1_err"] for h in last) for k in ("train", "val")}
    return found


def geometry(results: Results) -> dict[str, Any]:
    """The miniature's geometry: the maps blocks 1-5 run on, and the crops that would test what it cannot."""
    geo = results.geometry
    return {
        "crop": geo.crop,
        "block_maps": geo.block_sizes(),
        "stride": 32,
        "crop_for_one_by_one": geo.crop_for_one_by_one(),
        "crop_for_dense": STRIDE_CROPS * 32,
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


def rule(results: Results, found: list[Finding]) -> dict[str, Any]:
    """The rule's settings, and its calibration: how often it decides without an effect, simulated at 2, 3, 5 and
    10 seeds and at every number of seeds a finding of this report has, with this report's test images."""
    images = results.test_images()
    counts = sorted({2, 3, 5, 10} | {f.seeds for f in found if f.effect and f.kind != "failures" and f.seeds >= 2})
    return {
        "unit": "seed",
        "alpha": round(1 - LEVEL, 4),
        "level": LEVEL,
        "power": POWER,
        "margin": MARGIN,
        "equivalence_margin": EQUIVALENCE,
        "min_seeds": MIN_SEEDS,
        "chance_margin": CHANCE_MARGIN,
        "interval": "Student's t with n - 1 degrees of freedom on the n per-seed effects",
        "adjustment": "Holm's step-down, over the findings of this report",
        "calibration": [calibrate(kind, n, images) for kind in ("nets", "protocols") for n in counts],
        "finds_an_effect": finds_an_effect(max(counts), images),
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
    ended, last_3 = first_rate(history, spec.epochs, min(results.settings.final_epochs, spec.epochs - 1))
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
        "budget": spec.epochs,
        "first_rate_ended": ended,
        "first_rate_last_3_gain": last_3,
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


def first_rate(history: list[dict[str, float]], budget: int, final: int) -> tuple[str | None, float | None]:
    """How a run's first rate ended (``plateau rule``; ``budget``: divided only because the budget's final stage
    began; ``never``) and how many points of validation error its last 3 epochs at that rate gained."""
    drop = next((i for i, (a, b) in enumerate(zip(history, history[1:]), 1) if b["lr"] < a["lr"]), None)
    if not history:
        return None, None
    at_first = [h["val_top1_err"] for h in history[: drop or len(history)] if "val_top1_err" in h]
    gain = 100 * (at_first[-4] - at_first[-1]) if len(at_first) >= 4 else None
    if drop is None:
        return "never", gain
    return ("budget" if final > 0 and drop == budget - final else "plateau rule"), gain


def plateau(results: Results) -> dict[str, Any]:
    """How the runs ended: their first rate divided by the plateau rule, or only by the final stage at the
    budget's end (per model, among the runs that left chance, with the median gain of their last 3 epochs at the
    first rate); the runs still learning at their last epoch; the median of their last epochs' gains."""
    entries = {s.name: run_entry(results, s) for s in results.runs if s.name in results.saved["val"]}
    histories = [e["history"] for e in entries.values() if e["history"]]
    trained = {n: e for n, e in entries.items() if e["left_chance"] and e["first_rate_ended"]}
    by_budget = sorted(n for n, e in trained.items() if e["first_rate_ended"] == "budget")
    per_model: dict[str, list[int]] = {}
    for name, e in trained.items():
        got = per_model.setdefault(e["model"], [0, 0])
        got[0], got[1] = got[0] + (name in by_budget), got[1] + 1
    gains = [e["last_epoch_gain"] for e in entries.values() if e["last_epoch_gain"] is not None and e["left_chance"]]
    last_3 = [trained[n]["first_rate_last_3_gain"] for n in by_budget if trained[n]["first_rate_last_3_gain"]]
    return {
        "runs": len(histories),
        "runs_with_a_decay": sum(decays(h) > 0 for h in histories),
        "runs_decayed_by_the_rule": sum(e["first_rate_ended"] == "plateau rule" for e in entries.values()),
        "runs_decayed_only_at_the_budget": sum(e["first_rate_ended"] == "budget" for e in entries.values()),
        "runs_left_chance": len(trained),
        "first_rate_ended_by_budget": by_budget,
        "first_rate_ended_by_budget_per_model": per_model,
        "median_last_3_gain_at_first_rate_ended_by_budget": statistics.median(last_3) if last_3 else None,
        "runs_still_learning": sorted(n for n, e in entries.items() if e["still_learning"]),
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


def model_minutes(results: Results, model: str) -> float | None:
    """Minutes one run of a model took here (training and evaluation, the mean over its seeds), None if none ran."""
    done = [run_entry(results, s) for s in results.specs(model) if s.name in results.saved["val"]]
    return statistics.mean((e["train_seconds"] or 0) + e["eval_seconds"] for e in done) / 60 if done else None


def seed_minutes(results: Results, models: list[str]) -> float | None:
    """Minutes one seed of these models took here (with the runs they start from)."""
    per_model = [model_minutes(results, m) for m in dict.fromkeys(m for x in models for m in lineage(results, x))]
    return sum(per_model) if per_model and None not in per_model else None


def needs(results: Results, found: list[Finding]) -> list[dict[str, Any]]:
    """What each finding would need for 80 % power, at the paper's effect and at the paper's scaled to this data's
    error: seeds, and machine-hours at the minutes one seed of its runs took here (run one at a time). A *no better*
    finding has a row for each reading: the literal claim and the paper's near-equality."""
    rows = []
    for f in found:
        models = [m for m in (*f.a.split(" + "), f.b) if results.specs(m)]
        minutes = seed_minutes(results, models) if models else None
        for ident, reading, got in readings(f):
            seeds, scaled = got.get("seeds_for_power"), got.get("seeds_for_power_scaled")
            rows.append(
                {
                    "id": ident,
                    "claim": f.claim,
                    "reading": reading,
                    "seeds_now": f.seeds,
                    "power_at_paper": got.get("power_at_paper"),
                    "seeds_for_power": seeds,
                    "power_at_scaled": got.get("power_at_scaled"),
                    "seeds_for_power_scaled": scaled,
                    "minutes_per_seed": minutes,
                    "machine_hours": seeds * minutes / 60 if seeds and minutes else None,
                    "machine_hours_scaled": scaled * minutes / 60 if scaled and minutes else None,
                    "hours_on_nodes": node_hours(results, models, seeds) if seeds and minutes else None,
                }
            )
    return rows


def node_hours(results: Results, models: list[str], seeds: int, nodes=(1, 8, 64)) -> dict[str, float]:
    """Hours that ``seeds`` seeds of these models (and the runs they start from) take on 1, 8 and 64 nodes, one run
    at a time on each, at the minutes their runs took here (:func:`vggnet.reproduce.schedule.makespan`)."""
    from dataclasses import replace

    from .plan import plan
    from .schedule import makespan

    minutes = {m: model_minutes(results, m) for x in models for m in lineage(results, x)}
    bigger = replace(results.settings, seeds=seeds, scale_seeds=seeds)
    runs = [r for r in plan(bigger) if r.model in minutes]
    per_run = {r.name: minutes[r.model] for r in runs}
    return {str(n): makespan(runs, per_run, n) / 60 for n in nodes}


def readings(f: Finding) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, reading, where its power is) of each reading of a finding: a *no better* one has two."""
    if not f.no_better:
        return [(f.id, "the claim", vars(f))]
    return [
        (f"{f.id}/literal", f"literal: no better by {MARGIN}", vars(f)),
        (f"{f.id}/near-equality", f"near-equality: within {EQUIVALENCE}", f.equivalence or {}),
    ]
