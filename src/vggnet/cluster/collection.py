"""Features and predictions for a whole image collection on Ray (``vggnet features --ray``, ``vggnet predict
--ray``): Ray Data reads the list of images, a pool of actors (``--actors``, each ``--actor-cpus``) runs the model,
each actor loading it once from the weights the driver sends (no shared filesystem: images are read by path on the
actors' nodes, or through pyarrow's filesystems for URIs), and the rows are written as Parquet: the image's path, its
class folder where it has one, and the feature vector (or the top classes and probabilities). An image that does not
read is a row with the reason, not a failed job. The rows and values are those of the local command on the same
images, in the same order: files of ``--rows-per-file`` rows whose names sort in that order.

A collection is an image folder (``DIR/<class>/*``, or ``DIR/SPLIT/...`` as the local commands read it), a text file
of paths or URIs (one a line), or a Parquet file with a ``path`` column (and a ``class`` one where there are
classes).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..base.files import Staging

COLUMNS = ("path", "class", "error")
# A collection of millions is written by many tasks at once, never gathered into one block; the files' names sort in
# the collection's order (Ray names them by write task), so a folder reads as one table.
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
    collection has none)."""
    if data in ("fashion-mnist", "fashion-mnist-scaled"):
        raise ValueError(f"--ray reads image files: {data} is held in memory here; give an image folder or a list")
    if data.endswith(".parquet"):
        rows = _parquet_rows(data)
    elif Path(data).is_file():
        lines = [line.strip() for line in Path(data).read_text().splitlines()]
        rows = [{"path": line, "class": None} for line in lines if line and not line.startswith("#")]
    else:
        from ..data.folders import list_images

        root = Path(data)
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
    return [{"path": str(p), "class": c} for p, c in zip(paths, classes)]


def read_bytes(path: str) -> bytes:
    """A file's bytes, by local path or any URI pyarrow's filesystems read (s3://, gs://, hdfs://, file://)."""
    if "://" not in path:
        return Path(path).read_bytes()
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with filesystem.open_input_stream(inner) as stream:
        return stream.read()


class Runner:
    """One actor: the model loaded once, then each batch of rows turned into result rows."""

    def __init__(self, weights: bytes, name: str, arch: str | None, normalize: str | None, job: Job) -> None:
        import torch

        from ..inference import load_model, prepare

        torch.set_num_threads(job.threads)
        with tempfile.TemporaryDirectory(prefix="vggnet-weights-") as tmp:
            (Path(tmp) / name).write_bytes(weights)
            self.loaded = load_model(Path(tmp) / name, arch, normalize=normalize)
        self.net, self.job = prepare(self.loaded.model), job
        self.scales = list(job.scales or [self.loaded.default_scale])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"path": [], "class": [], "error": [], **{k: [] for k in self.result_columns()}}
        for path, label in zip(batch["path"], batch["class"]):
            out["path"].append(str(path))
            out["class"].append(None if label is None or label != label else str(label))  # None comes back as NaN
            try:
                found, error = self.one(str(path)), None
            except Exception as err:  # noqa: BLE001  (the reason is the row's; the job goes on)
                found, error = {k: None for k in self.result_columns()}, f"{type(err).__name__}: {err}"[:300]
            out["error"].append(error)
            for k, v in found.items():
                out[k].append(v)
        return out

    def result_columns(self) -> tuple[str, ...]:
        return ("feature",) if self.job.kind == "features" else ("top_classes", "top_probabilities")

    def one(self, path: str) -> dict[str, Any]:
        import torch

        from ..data.images import check_bytes, decode_bytes
        from ..data.sources import to_channels

        data = read_bytes(path)
        check_bytes(data)
        img = to_channels(decode_bytes(data)[None], self.loaded.model.in_channels)
        with torch.inference_mode():
            return self.features(img) if self.job.kind == "features" else self.predict(img)

    def features(self, img: Any) -> dict[str, Any]:
        from ..features import describe_images

        j, m = self.job, self.loaded
        found = describe_images(self.net, img, j.layer, self.scales, m.mean, m.std, j.flip, j.l2, m.pad)
        return {"feature": found[0].float().tolist()}

    def predict(self, img: Any) -> dict[str, Any]:
        import torch

        from ..inference import image_posteriors

        x = self.loaded.inputs(img, self.scales[0]).contiguous(memory_format=torch.channels_last)
        p = image_posteriors(self.loaded, self.net, x, self.job.protocol)[0]
        values, indices = p.topk(min(self.job.top, len(p)))
        return {"top_classes": [self.loaded.classes[i] for i in indices.tolist()], "top_probabilities": values.tolist()}


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
) -> Path:
    """The rows through a pool of ``actors`` actors on the cluster at ``address``; Parquet files in ``out``, of
    ``rows_per_file`` rows each, whose names sort in the collection's order."""
    from .connect import connect

    source = Path(weights)
    if not source.is_file():
        raise ValueError(f"--weights {weights}: --ray sends a weights file to the cluster; give one that is here")
    ray = connect(address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # rows in the collection's order
    dataset = ray.data.from_items(rows)
    found = dataset.map_batches(
        Runner,
        fn_constructor_args=(source.read_bytes(), source.name, arch, normalize, job),
        batch_size=16,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=actor_cpus,
    )
    target = Path(out)
    with Staging(target) as stage:  # the earlier rows stay whole until the new ones are all written
        found.write_parquet(str(stage.folder), min_rows_per_file=rows_per_file)
        written = sorted(p.name for p in stage.folder.iterdir() if p.is_file())
        stage.commit(written, [p.name for p in target.glob("*.parquet")])
    return target
