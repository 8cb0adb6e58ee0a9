"""The optional packages and the extras that bring them: where one is missing, a sentence that names it and the
``pip install`` that brings it, instead of an ImportError's traceback."""

from __future__ import annotations

import os

# The top-level module of each optional package, and the extra of vggnet's that installs it (pyproject.toml).
EXTRAS = {
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "openvino": "openvino",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "multipart": "serve",
    "grpc": "serve",
    "tritonclient": "triton",
    "ray": "ray",
    "pyarrow": "ray",
}


def missing_package(err: ImportError) -> str | None:
    """The sentence for an optional package that is not installed, or None where ``err`` is about anything else."""
    top = (getattr(err, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (
        f"this needs {top}, which is not installed; it comes with vggnet's {extra} extra: pip install 'vggnet[{extra}]'"
    )


def require(module: str, purpose: str) -> None:
    """Import ``module`` or raise ``ValueError`` saying that ``purpose`` needs it and which extra brings it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{purpose}: {missing_package(err) or err}") from None


# What a command line needs beyond the base package, by what it holds: the command, a flag, a flag's value, or a
# file's suffix. scripts/main.sh installs these before it runs the command it is given.
NEEDS = {
    "command": {"serve": "serve", "inside": "serve", "export": "export"},
    "flag": {"--ray": "ray", "--triton": "triton"},
    "value": {
        ("--engine", "openvino"): "openvino",
        ("--engine", "onnxruntime"): "export",
        ("--only", "engines"): "export,openvino",
    },
    "suffix": {".onnx": "export", ".xml": "openvino", ".parquet": "ray"},
}


def extras_for(argv: list[str]) -> list[str]:
    """The extras of vggnet that ``vggnet ARGV`` needs (sorted; none for the base package's commands)."""
    found, flag = set(), None
    for i, word in enumerate(argv):
        values = [word]
        if word.startswith("--"):
            flag, *values = word.split("=", 1)
            found.add(NEEDS["flag"].get(flag, ""))
        elif i == 0:
            found.add(NEEDS["command"].get(word, ""))
        for value in values:
            found.add(NEEDS["value"].get((flag, value), ""))
            found.add(NEEDS["suffix"].get(os.path.splitext(value)[1].lower(), ""))
    return sorted({extra for text in found for extra in text.split(",") if extra})
