"""How long a plan takes on N nodes, from its graph and its runs' costs: each node runs one run at a time, a run
starts once the run it starts from is done, and a free node takes the ready run with the longest chain still behind
it (list scheduling, the critical path first). No number of nodes beats the longest chain of runs."""

from __future__ import annotations

import heapq

from ..base.progress import duration
from .plan import RunSpec


def chains(runs: list[RunSpec], minutes: dict[str, float]) -> dict[str, float]:
    """For each run, the minutes of the longest chain from its start to the end of the runs that start from it."""
    children: dict[str, list[str]] = {}
    for r in runs:
        if r.init_from:
            children.setdefault(r.init_from, []).append(r.name)
    found: dict[str, float] = {}
    for r in reversed(runs):  # the plan lists a run's initialisation before it
        found[r.name] = minutes[r.name] + max((found[c] for c in children.get(r.name, [])), default=0.0)
    return found


def longest_chain(runs: list[RunSpec], minutes: dict[str, float]) -> float:
    return max(chains(runs, minutes).values(), default=0.0)


def makespan(runs: list[RunSpec], minutes: dict[str, float], nodes: int) -> float:
    """Minutes the plan takes on ``nodes`` nodes, one run at a time on each."""
    if nodes < 1:
        raise ValueError(f"a cluster needs at least one node, got {nodes}")
    priority = chains(runs, minutes)
    parent = {r.name: r.init_from for r in runs}
    waiting = {r.name for r in runs}
    ready = [(-priority[n], n) for n in waiting if not parent[n] or parent[n] not in waiting]
    heapq.heapify(ready)
    waiting -= {n for _, n in ready}
    running: list[tuple[float, str]] = []
    clock = 0.0
    while ready or running:
        while ready and len(running) < nodes:
            _, name = heapq.heappop(ready)
            heapq.heappush(running, (clock + minutes[name], name))
        clock, name = heapq.heappop(running)
        for child in [n for n in waiting if parent[n] == name]:
            waiting.discard(child)
            heapq.heappush(ready, (-priority[child], child))
    return clock


def schedule_lines(runs: list[RunSpec], minutes: dict[str, float], nodes=(1, 2, 4, 8, 16, 32, 64)) -> list[str]:
    """The plan's time on each number of nodes, and the longest chain that bounds them all."""
    times = ", ".join(f"{n} node{'s' * (n > 1)} {duration(60 * makespan(runs, minutes, n))}" for n in nodes)
    bound = duration(60 * longest_chain(runs, minutes))
    return [f"on a cluster, one run at a time on each node: {times}; no cluster beats its longest chain, {bound}"]
