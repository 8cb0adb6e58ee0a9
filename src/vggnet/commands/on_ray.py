"""What runs past one machine, on Ray: the flags that say where (:class:`OnRay`), a collection's pool of actors
(:class:`CollectionFlags`), and ``vggnet features --ray`` and ``vggnet predict --ray`` (:func:`on_ray`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from ..base.files import folder_lock
from ..base.settings import AT_LEAST_ONE, POSITIVE, setting
from ..cluster.collection import ROWS_PER_FILE


@dataclass
class OnRay:
    ray: str | None = setting(
        None,
        "run on a Ray cluster: auto (the one this machine belongs to), local (start Ray here) or its head's HOST:PORT "
        "(a reproduction: each run one task, its files written into --out as a serial run writes them; a collection: "
        "a pool of actors loading the model once each, Parquet rows into --out, an unreadable image a row with its "
        "reason)",
        metavar="ADDRESS",
    )
    ray_log: bool = setting(
        False, "with --ray: show Ray's own log here (by default it goes to the files of the cluster's session)"
    )


@dataclass
class CollectionFlags(OnRay):
    actors: int = setting(2, "with --ray: actors running the model", AT_LEAST_ONE)
    actor_cpus: float = setting(1.0, "with --ray: CPUs of each actor (its threads)", POSITIVE)
    rows_per_file: int = setting(
        ROWS_PER_FILE,
        "with --ray: rows of each Parquet file (written in parallel, named to sort in the collection's order)",
        AT_LEAST_ONE,
    )


def on_ray(s: Any, ray: CollectionFlags, data: str | None, split: str | None, limit: int | None, job: Any) -> int:
    """``vggnet features --ray`` and ``vggnet predict --ray``: the collection through a pool of actors on the
    cluster, its rows written as Parquet into --out."""
    from ..cluster.collection import collection_rows, run_collection

    if not data or not s.out:
        raise ValueError("--ray runs over a collection: give --data (a folder, a list of paths, Parquet) and --out DIR")
    if s.out.endswith(".safetensors") or (os.path.exists(s.out) and not os.path.isdir(s.out)):
        raise ValueError(f"--out {s.out}: with --ray the rows are Parquet files in a folder; give a folder")
    if len(s.weights) != 1:
        raise ValueError("--ray runs one model: give one --weights")
    job.threads = max(1, round(ray.actor_cpus))
    rows = collection_rows(data, split, limit)
    with folder_lock(s.out, "output folder"):
        pool = (ray.actors, ray.actor_cpus, ray.rows_per_file, ray.ray_log)
        done = run_collection(ray.ray, rows, s.weights[0], s.arch, s.normalize, job, s.out, *pool)
    print(f"wrote {done.rows} rows ({job.kind}) to {done.path}")
    if done.failed:
        print(f"warning: {done.summary()}", file=sys.stderr)
    return 0
