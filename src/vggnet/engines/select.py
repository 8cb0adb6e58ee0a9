"""Which engine runs an exported model: one named, or ``auto``, the fastest installed one for this kind of model on
this CPU. The ranking differs by CPU (onnxruntime's int8 kernels, OpenVINO's, PyTorch's oneDNN use each CPU's
instructions differently), so ``auto`` measures: a few batches through each engine, once per machine and kind of
model (precision, input, classes, size), the answer kept in vggnet's cache (``engines.json``)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..base import hardware
from ..base.files import atomic_write_text, cache_dir
from ..base.timing import take_turns
from .exported import file_size

ENGINES = ("onnxruntime", "openvino")  # the engines of an exported model (PyTorch runs the weights it came from)
MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def installed() -> list[str]:
    """The engines whose library is installed, in :data:`ENGINES`' order."""
    return [e for e in ENGINES if importlib.util.find_spec(MODULES[e]) is not None]


def open_engine(path: str | os.PathLike, engine: str, threads: int | None = None, precision: str = "f32") -> Any:
    """The exported model at ``path`` through ``engine`` (``onnxruntime`` or ``openvino``)."""
    if engine == "onnxruntime":
        if Path(str(path)).suffix != ".onnx":
            raise ValueError(f"onnxruntime runs .onnx files; {path} is OpenVINO's IR: use --engine openvino")
        if precision != "f32":
            raise ValueError("onnxruntime computes float models in float32 on the CPU; bf16 needs --engine openvino")
        from .onnxruntime_engine import OnnxModel

        return OnnxModel(path, threads)
    if engine == "openvino":
        if "openvino" not in installed():
            raise ValueError("--engine openvino needs OpenVINO (pip install 'vggnet[openvino]')")
        from .openvino_engine import OpenVinoModel

        return OpenVinoModel(path, threads, precision)
    raise ValueError(f"unknown engine {engine!r} for an exported model; expected auto, {', '.join(ENGINES)}")


def open_exported(
    path: str | os.PathLike, engine: str = "auto", threads: int | None = None, precision: str = "f32"
) -> Any:
    """The exported model at ``path``, through ``engine`` or (``auto``) the fastest installed one here."""
    if engine == "auto":
        engine = choose(path, precision)
    return open_engine(path, engine, threads, precision)


def model_kind(path: str | os.PathLike, precision: str) -> str:
    """What makes engines rank differently: the exported precision, input, classes, size, the asked arithmetic."""
    return kind_of(exported_metadata(path), file_size(Path(str(path))), precision)


def exported_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """What an exported model (ONNX, or OpenVINO's IR) says about itself, read and checked without running it."""
    from .onnxruntime_engine import read_onnx_metadata

    p = Path(str(path))
    return read_onnx_metadata(p) if p.suffix == ".onnx" else _ir_meta(p)


def kind_of(meta: dict[str, Any], size: int, precision: str) -> str:
    """:func:`model_kind` from an exported model's metadata and its files' size in bytes."""
    return (
        f"{meta.get('precision', 'float32')} | {meta.get('in_channels')}x{meta.get('crop')} | "
        f"{meta.get('num_classes')} classes | {size // 2**20} MiB | {precision}"
    )


def _ir_meta(path: Path) -> dict[str, Any]:
    import openvino as ov

    from .openvino_engine import read_ir_metadata, read_model

    return read_ir_metadata(read_model(ov.Core(), path), path)


def cache_file() -> Path:
    return cache_dir() / "engines.json"


MEASUREMENT = "v2"  # how engines are measured: a new way starts the cache afresh


def choose(path: str | os.PathLike, precision: str = "f32", refresh: bool = False) -> str:
    """The fastest installed engine for this kind of model on this CPU: measured once, then remembered (``refresh``,
    or ``vggnet bench --only engines``, measures again)."""
    candidates = [e for e in installed() if not (e == "onnxruntime" and Path(str(path)).suffix != ".onnx")]
    if precision != "f32":
        candidates = [e for e in candidates if e == "openvino"]
    if not candidates:
        raise ValueError(f"no installed engine runs {path} (pip install 'vggnet[openvino]' or onnxruntime)")
    if len(candidates) == 1:
        return candidates[0]
    key = f"{MEASUREMENT} || {hardware.cpu_signature()} || {model_kind(path, precision)}"
    known = recall(key, {"engine": str, "candidates": list})
    if not refresh and known and known["engine"] in candidates and set(candidates) <= set(known["candidates"]):
        return known["engine"]
    rates = measure_all(path, candidates, precision)
    best = max(rates, key=rates.get)
    remember(key, {"engine": best, "images_per_s": rates, "candidates": candidates})
    return best


def recall(key: str, fields: dict[str, type | tuple[type, ...]] | None = None) -> dict[str, Any] | None:
    """What was measured under ``key`` on this machine, if anything. An entry that does not read as ``fields`` say
    (edited by hand, written by another version, damaged) is not a reason to fail: it is said in one line and
    measured again (the caller's :func:`remember` then rewrites it)."""
    entry = read_cache().get(key)
    if entry is None:
        return None
    wrong = not isinstance(entry, dict) or any(
        not isinstance(entry.get(name), kind) or isinstance(entry.get(name), bool)
        for name, kind in (fields or {}).items()
    )
    if wrong:
        print(
            f"vggnet: an entry of the engines' cache {cache_file()} does not read ({str(entry)[:60]}); measuring again",
            file=sys.stderr,
        )
        return None
    return entry


def remember(key: str, entry: dict[str, Any]) -> None:
    """``entry`` (with the time it was measured) kept under ``key`` in the cache."""
    cache = read_cache()
    cache[key] = {**entry, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    with contextlib.suppress(OSError):  # an unwritable cache costs a measurement next time, nothing more
        atomic_write_text(cache_file(), json.dumps(cache, indent=1))


def read_cache() -> dict[str, Any]:
    """The engines' cache; one that does not read (not JSON, not an object of entries) is set aside beside itself,
    said in one line, and the measurements start afresh."""
    path = cache_file()
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        return _set_aside(path, f"{type(err).__name__}: {str(err)[:80]}")
    return found if isinstance(found, dict) else _set_aside(path, f"a JSON {type(found).__name__}, not an object")


def _set_aside(path: Path, why: str) -> dict[str, Any]:
    aside = path.with_name(path.name + ".unreadable")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
        print(
            f"vggnet: the engines' cache {path} does not read ({why}); set aside as {aside}, measuring afresh",
            file=sys.stderr,
        )
    return {}


def measure(path: str | os.PathLike, engine: str, precision: str = "f32", batch: int = 8, repeats: int = 3) -> float:
    """Images/s of ``engine`` on batches of ``batch`` crops (what the service and evaluation send)."""
    return measure_all(path, [engine], precision, batch, repeats)[engine]


def measure_all(
    path: str | os.PathLike, engines: list[str], precision: str = "f32", batch: int = 8, rounds: int = 5
) -> dict[str, float]:
    """Images/s of each engine on the same batches of ``batch`` crops, the engines taking turns for ``rounds``
    rounds (a machine's drift then touches them all alike); the median round of each."""
    models, refused = {}, {}
    for engine in engines:
        try:
            models[engine] = open_engine(path, engine, None, precision)
        except ValueError as err:  # an engine that cannot run this model here is not a candidate
            refused[engine] = str(err)
    if not models:
        raise ValueError(f"no engine runs {path} here: " + "; ".join(refused.values()))
    for engine, reason in refused.items():
        print(f"warning: {engine} left out: {reason}", file=sys.stderr)
    first = next(iter(models.values()))
    crop = int(first.meta["crop"])
    x = torch.randn(batch, first.in_channels, crop, crop)
    return take_turns({e: (lambda m=model: m(x)) for e, model in models.items()}, batch, rounds, least=0.2)
