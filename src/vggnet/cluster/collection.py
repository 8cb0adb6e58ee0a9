"""Features and predictions for a whole image collection on Ray (``vggnet features --ray``, ``vggnet predict
--ray``): Ray Data reads the list of images, a pool of actors (``--actors``, each ``--actor-cpus``) runs the model,
each actor loading it once from the weights the driver sends (no shared filesystem: images are read by path on the
actors' nodes, or through pyarrow's filesystems for URIs, each read within bounds), and the rows stream back to the
driver, which shows the job's progress and writes them as Parquet into ``--out`` on its own machine: the image's
path, its class folder where it has one, and the feature vector (or the top classes and probabilities). An image
that does not read is a row with the reason, counted and named at the end; a job where no image read is an error,
and writes nothing. The rows and values are those of the local command on the same images, in the same order:
files of ``--rows-per-file`` rows whose names sort in that order.

A collection is an image folder (``DIR/<class>/*``, or ``DIR/SPLIT/...`` as the local commands read it), a text file
of paths or URIs (one a line), or a Parquet file with a ``path`` column (and a ``class`` one where there are
classes); its relative paths are made absolute on the driver, from its working folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base.files import Staging
from ..base.progress import Progress
from ..data.sources import REASONS, failures_sentence

COLUMNS = ("path", "class", "error")
# A collection of millions is never gathered into one block or one file: the driver holds one file's rows at a time,
# and the files' names sort in the collection's order, so a folder reads as one table.
ROWS_PER_FILE = 4096


@dataclass
class Job:
    """What each actor computes for an image: ``features`` (of ``layer``, at ``scales``, with ``flip`` and ``l2``)
    or ``predict`` (the ``top`` classes by ``protocol`` at ``scales[0]``)."""

    kind: str
    layer: str = "relu7"
    scales: list[int] | None = None
    flip: bool = True
    l2: bool = True
    top: int = 5
    protocol: str = "center"
    threads: int = 1


def collection_rows(data: str, split: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The images of a collection, in the local commands' order: ``{"path", "class"}`` (class None where the
    collection has none). Every path is absolute, made so here (a list's relative entries from this process's
    working folder, else from the list's own, as a local command reads them), since the cluster's workers run in
    folders of their own."""
    if data in ("fashion-mnist", "fashion-mnist-scaled"):
        raise ValueError(f"--ray reads image files: {data} is held in memory here; give an image folder or a list")
    if data.endswith(".parquet"):
        rows = _parquet_rows(data)
    elif Path(data).is_file():  # a list, read as the local commands read one (vggnet.data.listing)
        from ..data.listing import list_entries

        rows = [{"path": absolute(entry), "class": None} for entry in list_entries(data)]
    else:
        from ..data.folders import list_images

        root = Path(os.path.abspath(data))
        if not root.is_dir():
            raise ValueError(f"--data {data}: no such folder, list of paths or Parquet file")
        if split is not None and not (root / split).is_dir():
            raise ValueError(f"{root} has no {split}/ folder")
        folder = root / split if split else (root / "val" if (root / "val").is_dir() else root)
        classes, samples = list_images(folder)
        rows = [{"path": str(p), "class": classes[label] if label >= 0 else None} for p, label in samples]
    if not rows:
        raise ValueError(f"--data {data} lists no images")
    return rows[: limit or len(rows)]


def absolute(path: str) -> str:
    """A list's entry as the cluster must see it: a local path made absolute here, a URI as it is."""
    return path if "://" in path else os.path.abspath(path)


def _parquet_rows(data: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(data)
    except Exception as err:  # pyarrow's own errors for files that are not Parquet
        raise ValueError(f"--data {data} does not read as Parquet ({str(err).splitlines()[0][:120]})") from None
    if "path" not in table.column_names:
        raise ValueError(f"--data {data} has no 'path' column (it has {', '.join(table.column_names)})")
    paths = table.column("path").to_pylist()
    classes = table.column("class").to_pylist() if "class" in table.column_names else [None] * len(paths)
    return [{"path": absolute(str(p)), "class": c} for p, c in zip(paths, classes)]


class Runner:
    """One actor: the model loaded once, then each batch of rows turned into result rows."""

    def __init__(self, weights: list, name: str, arch: str | None, normalize: str | None, job: Job) -> None:
        import ray
        import torch

        from ..inference.folding import prepare
        from ..inference.loading import load_model

        torch.set_num_threads(job.threads)
        with tempfile.TemporaryDirectory(prefix="vggnet-weights-") as tmp:
            # the file's bytes come by reference: an actor whose own arguments were in the object store is one Ray
            # warns it may not restart
            (Path(tmp) / name).write_bytes(ray.get(weights[0]))
            self.loaded = load_model(Path(tmp) / name, arch, normalize=normalize)
        self.net, self.job = prepare(self.loaded.model), job
        self.scales = list(job.scales or [self.loaded.default_scale])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"path": [], "class": [], "error": [], **{k: [] for k in result_columns(self.job)}}
        for path, label in zip(batch["path"], batch["class"]):
            out["path"].append(str(path))
            out["class"].append(None if label is None or label != label else str(label))  # None comes back as NaN
            try:
                found, error = self.one(str(path)), None
            except Exception as err:  # noqa: BLE001  (the reason is the row's; the job goes on)
                found, error = {k: None for k in result_columns(self.job)}, f"{type(err).__name__}: {err}"[:300]
            out["error"].append(error)
            for k, v in found.items():
                out[k].append(v)
        return out

    def one(self, path: str) -> dict[str, Any]:
        import torch

        from ..data.images import decode_bytes, read_checked
        from ..data.sources import to_channels

        data, _ = read_checked(path)
        img = to_channels(decode_bytes(data)[None], self.loaded.model.in_channels)
        with torch.inference_mode():
            return self.features(img) if self.job.kind == "features" else self.predict(img)

    def features(self, img: Any) -> dict[str, Any]:
        from ..inference.descriptors import describe_images

        j, m = self.job, self.loaded
        found = describe_images(self.net, img, j.layer, self.scales, m.mean, m.std, j.flip, j.l2, m.pad)
        return {"feature": found[0].float().tolist()}

    def predict(self, img: Any) -> dict[str, Any]:
        import torch

        from ..inference.geometry import image_posteriors

        x = self.loaded.inputs(img, self.scales[0]).contiguous(memory_format=torch.channels_last)
        p = image_posteriors(self.net, x, self.loaded.crop, self.job.protocol)[0]
        values, indices = p.topk(min(self.job.top, len(p)))
        return {"top_classes": [self.loaded.classes[i] for i in indices.tolist()], "top_probabilities": values.tolist()}


def result_columns(job: Job) -> tuple[str, ...]:
    return ("feature",) if job.kind == "features" else ("top_classes", "top_probabilities")


def schema(job: Job) -> Any:
    """The rows' columns and types (a batch whose every row failed has no values to tell them by)."""
    import pyarrow as pa

    text = [pa.field(name, pa.string()) for name in COLUMNS]
    if job.kind == "features":
        return pa.schema([*text, pa.field("feature", pa.list_(pa.float64()))])
    scores = [pa.field("top_classes", pa.list_(pa.string())), pa.field("top_probabilities", pa.list_(pa.float64()))]
    return pa.schema([*text, *scores])


@dataclass
class Outcome:
    """What a collection's run wrote: ``rows`` rows into ``path``, ``failed`` of them images that did not read (the
    first ``reasons``: ``path: reason``)."""

    path: Path
    rows: int
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The run's end, in a sentence: how many rows did not read, and the first reasons."""
        return failures_sentence(self.failed, self.rows, self.reasons)


def run_collection(
    address: str,
    rows: list[dict[str, Any]],
    weights: str,
    arch: str | None,
    normalize: str | None,
    job: Job,
    out: str,
    actors: int = 2,
    actor_cpus: float = 1.0,
    rows_per_file: int = ROWS_PER_FILE,
    show_log: bool = False,
    progress: bool = True,
) -> Outcome:
    """The rows through a pool of ``actors`` actors on the cluster at ``address``, streamed back to this process,
    which writes them as Parquet files into ``out`` (on this machine, whatever the cluster's nodes), of
    ``rows_per_file`` rows each, whose names sort in the collection's order; the job's progress on a terminal.
    ``ValueError`` where no image read: then nothing is written, and earlier rows in ``out`` stay."""
    from .connect import connect, core_log_to_files

    source = Path(weights)
    if not source.is_file():
        raise ValueError(f"--weights {weights}: --ray sends a weights file to the cluster; give one that is here")
    ray = connect(address, show_log=show_log)
    quiet_data(ray, show_log)
    held = ray.put(source.read_bytes())
    found = ray.data.from_items(rows).map_batches(
        Runner,
        fn_constructor_args=([held], source.name, arch, normalize, job),
        batch_size=16,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
    )
    target = Path(os.path.abspath(out))
    with Staging(target) as stage, core_log_to_files(show_log):  # the earlier rows stay until the new are written
        outcome = write_rows(ray, found, stage.folder, len(rows), job, rows_per_file, progress)
        if outcome.failed == outcome.rows:
            raise ValueError(f"nothing written to {out}: {outcome.summary()}")
        stage.commit(outcome.written, [p.name for p in target.glob("*.parquet")])
    outcome.path = target
    return outcome


def quiet_data(ray: Any, show_log: bool) -> None:
    """Ray Data's own progress bars and log lines (a status block every few seconds) go to the session's log files,
    not the terminal, unless ``show_log``: the job's progress is ours."""
    import logging

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in the collection's order
    context.enable_progress_bars = show_log
    context.print_on_execution_start = show_log
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO if show_log else logging.CRITICAL + 1)


class Parts:
    """Rows into Parquet files of ``size`` rows in ``folder``, named to sort in the order the rows came."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder, self.size, self.pending, self.buffered, self.names = folder, size, [], 0, []

    def add(self, table: Any) -> None:
        offset = 0
        while offset < table.num_rows:  # a batch may straddle two files
            take = min(self.size - self.buffered, table.num_rows - offset)
            self.pending.append(table.slice(offset, take))
            self.buffered, offset = self.buffered + take, offset + take
            if self.buffered == self.size:
                self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.pending:
            self.names.append(f"part-{len(self.names):06d}.parquet")
            pq.write_table(pa.concat_tables(self.pending), self.folder / self.names[-1])
            self.pending, self.buffered = [], 0


def write_rows(ray: Any, found: Any, folder: Path, total: int, job: Job, rows_per_file: int, progress: bool) -> Outcome:
    """The rows as they come back, in order, into Parquet files of ``rows_per_file`` rows in ``folder``; the
    failures counted, and the job's progress shown."""
    import pyarrow.compute as pc

    done, parts, columns = Outcome(folder, 0), Parts(folder, rows_per_file), schema(job)
    shown = Progress(total, desc=job.kind, unit="image", enabled=progress)  # and off with --no-progress
    try:
        for batch in found.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = batch.select(columns.names).cast(columns)
            bad = table.filter(pc.is_valid(table["error"]))
            done.failed += bad.num_rows
            for row in bad.slice(0, REASONS - len(done.reasons)).to_pylist():
                done.reasons.append(f"{row['path']}: {row['error']}")
            parts.add(table)
            done.rows += table.num_rows
            shown.update(done.rows, f"{done.failed:,} unreadable" if done.failed else "")
    except ray.exceptions.RayError as err:
        raise ValueError(f"the job failed on the cluster: {str(err).strip().splitlines()[-1][:200]}") from None
    finally:
        shown.close()
    parts.flush()
    done.written = parts.names
    return done
