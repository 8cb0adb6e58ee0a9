"""The benchmark scripts' own logic (their runs are measurements, made by hand and recorded in BENCHMARKS.md)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs_fashion

ROOT = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table3_states_the_papers_conclusions_from_the_numbers():
    table3 = script("table3")
    paper_like = {"A": [10.0, 10.2], "A-LRN": [10.1, 10.3], "B": [9.6], "C": [9.5], "D": [9.0], "E": [9.1]}
    assert [line.endswith("holds here") for line in table3.conclusions(paper_like)] == [True, True, True]
    upside_down = {"A": [9.0], "A-LRN": [8.0], "B": [9.6], "C": [9.0], "D": [9.5], "E": [9.1]}
    assert [line.endswith("does not hold here") for line in table3.conclusions(upside_down)] == [True, True, True]
    text = table3.table(paper_like, {k: [0.5] for k in paper_like}, 2)
    assert "| A | 11 | 29.6 / 10.4 | 10.10 ± 0.14 / 0.50 |" in text and "| E | 19 | 27.3 / 9.0 |" in text


def test_transfer_schedule_keeps_the_steps_comparable():
    transfer = script("transfer")
    plans = {n: transfer.schedule(n, quick=False) for n in (10, 100, 1000)}
    steps = {n: p["epochs"] * -(-5 * n // p["batch_size"]) for n, p in plans.items()}
    assert all(200 <= s <= 700 for s in steps.values()), steps
    assert plans[10]["lr"] == pytest.approx(0.1 * plans[10]["batch_size"] / 128)


@needs_fashion
@pytest.mark.slow
def test_table3_runs_at_its_tiny_setting(tmp_path):
    args = [sys.executable, str(ROOT / "benchmarks" / "table3.py"), "--tiny", "--out", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "table3.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert (
        len(rows) == 7
        and rows[1].startswith("| A | 11 | 29.6 / 10.4 |")
        and len([x for x in text.splitlines() if x.startswith("- ")]) == 3
    )
