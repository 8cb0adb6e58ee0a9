"""A reproduction on a Ray cluster (``vggnet reproduce --ray ADDRESS``): every run of the plan is one Ray task that
needs ``--run-cpus`` CPUs (and ``--run-gpus`` GPUs), with its parents' results (their weights) as its inputs, so
that Ray orders the graph. No shared filesystem is assumed: a task gets the files it needs as objects, trains and
validates in a folder of its own on whatever node runs it, and returns its run's files, which the driver writes
atomically into ``--out`` as a serial run writes them. Runs already done in ``--out`` are not submitted again; a task
whose node dies is retried on another. The test set is evaluated, as in a serial run, only once every run is
validated, each run's evaluation a task too. A run's result does not depend on where it ran: the same seed, CPU kind
and thread count give the serial run's numbers.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..base.files import atomic_write_bytes
from ..reproduce.plan import RunSpec, Settings
from ..reproduce.runs import accepted, chosen_on_validation, missing, state_of
from .connect import connect

RETRIES = 3  # a task whose node dies is run again elsewhere, this many times at most
SKIPPED = ("best.pt", ".vggnet.lock")  # files a run's folder holds that nothing reads back


def folder_files(folder: Path) -> dict[str, bytes]:
    """The files of a run's folder, by path within it (what a task receives or returns)."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in SKIPPED and "tensorboard" not in p.parts
    }


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """A run's files into its folder, each written atomically."""
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)


def run_task(spec: RunSpec, settings: Settings, threads: int, own: dict[str, bytes], parent: dict | None) -> dict:
    """Train (or resume) and validate one run in a folder of this node's own; its state, files and node."""
    import torch

    from ..reproduce.runs import train_and_validate
    from .connect import node_label

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="vggnet-run-") as tmp:
        here = replace(settings, out=tmp, progress=False)
        write_files(Path(tmp) / spec.name, own)
        states = {}
        if spec.init_from and parent is not None:
            states[spec.init_from] = parent["state"]
            write_files(
                Path(tmp) / spec.init_from, {"model.safetensors": parent["files"].get("model.safetensors", b"")}
            )
        lines: list[str] = []
        state = train_and_validate(spec, here, states, spec.name, lines.append)
        return {"name": spec.name, "state": state, "files": folder_files(Path(tmp) / spec.name), "node": node_label()}


def test_task(spec: RunSpec, settings: Settings, threads: int, own: dict[str, bytes], chosen: set[str]) -> dict:
    """Evaluate one validated run on the test set in a folder of this node's own; its test file and node."""
    import torch

    from ..reproduce.runs import evaluate_run
    from .connect import node_label

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="vggnet-test-") as tmp:
        here = replace(settings, out=tmp, progress=False)
        write_files(Path(tmp) / spec.name, own)
        path = evaluate_run(spec, here, "test", chosen)
        return {"name": spec.name, "state": "tested", "files": {path.name: path.read_bytes()}, "node": node_label()}


def execute_on_ray(
    settings: Settings, runs: list[RunSpec], address: str, run_cpus: int = 1, run_gpus: float = 0.0, log=print
) -> dict[str, str]:
    """``vggnet reproduce --ray``: the plan's runs as Ray tasks, then their test evaluations; each run's state."""
    ray = connect(address)
    runs = accepted(settings, runs)
    out = Path(settings.out)
    options = {"num_cpus": run_cpus, "num_gpus": run_gpus, "max_retries": RETRIES}
    train = ray.remote(run_task).options(**options)
    states: dict[str, str] = {}
    pending: dict[Any, str] = {}
    results: dict[str, Any] = {}  # run -> the ObjectRef of its task's result, for the runs that start from it
    for spec in runs:
        state = state_of(spec, settings)
        if state in ("validated", "failed"):
            states[spec.name] = state
            continue
        parent = None
        if spec.init_from:
            parent = results.get(spec.init_from)
            if parent is None:
                done = states[spec.init_from] if spec.init_from in states else state_of_name(settings, spec.init_from)
                parent = ray.put({"state": done, "files": folder_files(out / spec.init_from)})
        ref = train.remote(spec, settings, run_cpus, folder_files(out / spec.name), parent)
        results[spec.name] = ref
        pending[ref] = spec.name
    log(f"{len(pending)} of {len(runs)} runs submitted to the cluster ({len(runs) - len(pending)} done already)")
    states.update(collect(ray, pending, out, "trained and validated", log, len(runs)))
    chosen = chosen_on_validation(settings, runs)
    test = ray.remote(test_task).options(**options)
    tests = {
        test.remote(spec, settings, run_cpus, folder_files(out / spec.name), chosen): spec.name
        for spec in runs
        if states.get(spec.name) == "validated" and missing(spec, settings, "test", chosen)
    }
    collect(ray, tests, out, "tested", log, len(runs))
    return {name: "tested" if state == "validated" else state for name, state in states.items()}


def state_of_name(settings: Settings, name: str) -> str:
    """A run's state on disk, by its name (a parent not in this plan's list)."""
    folder = Path(settings.out) / name
    if (folder / "failed.json").is_file():
        return "failed"
    return "validated" if (folder / "model.safetensors").is_file() else "new"


def collect(ray: Any, pending: dict[Any, str], out: Path, what: str, log, total: int) -> dict[str, str]:
    """Wait for the tasks, writing each one's files into its run's folder as it finishes; a progress bar of the
    plan's runs done, and of them by node."""
    from ..base.progress import Progress

    states, nodes = {}, Counter()
    with Progress(total, total - len(pending), what, unit="run", enabled=bool(pending)) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            found = ray.get(done[0])
            write_files(out / found["name"], found["files"])
            states[found["name"]] = found["state"]
            nodes[found["node"]] += 1
            del pending[done[0]]
            bar.update(bar.n + 1, ", ".join(f"{n}: {c}" for n, c in sorted(nodes.items())))
    if nodes:
        log(f"{what}: " + ", ".join(f"{c} on {n}" for n, c in sorted(nodes.items())))
    return states
