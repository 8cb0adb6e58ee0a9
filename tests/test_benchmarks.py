"""The benchmark scripts' own logic (their runs are measurements, made by hand and recorded in BENCHMARKS.md)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_transfer_schedule_keeps_the_steps_comparable():
    transfer = script("transfer")
    plans = {n: transfer.schedule(n, quick=False) for n in (10, 100, 1000)}
    steps = {n: p["epochs"] * -(-5 * n // p["batch_size"]) for n, p in plans.items()}
    assert all(200 <= s <= 700 for s in steps.values()), steps
    assert plans[10]["lr"] == pytest.approx(0.1 * plans[10]["batch_size"] / 128)


def test_the_load_generator_reports_rates_and_percentiles_from_its_latencies():
    serve = script("serve")
    level = serve.Level(clients=8, requests=100, seconds=4.0, latencies=[i / 1000 for i in range(1, 101)], errors=0)
    assert level.rate == 25.0
    assert (level.percentile(50), level.percentile(95), level.percentile(99)) == (0.051, 0.095, 0.099)
    assert serve.Level(1, 0, 1.0, [], 0).percentile(50) != serve.Level(1, 0, 1.0, [], 0).percentile(50)  # NaN
