"""The optional packages and the extras that bring them: where one is missing, a sentence that names it and the
``pip install`` that brings it, instead of an ImportError's traceback."""

from __future__ import annotations

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
