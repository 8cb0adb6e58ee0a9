"""Deployment files: ``onnx`` (TorchScript, ONNX and OpenVINO IR of the paper's dense form, checked against PyTorch
before success is declared), ``int8`` (static quantisation, calibrated and checked on held-out images), ``metadata``
(what an exported file says about itself, written here and only read by the engines) and ``triton`` (a Triton model
repository and its configuration). It imports the core (model, inference, data, engines to check its files) and the
base; the service, benchmarks and the command line import it.
"""

from .int8 import Int8Settings, check_agreement, quantize_onnx
from .onnx import ExportSettings, check_options, export, run_export

__all__ = [
    "ExportSettings",
    "Int8Settings",
    "check_agreement",
    "check_options",
    "export",
    "quantize_onnx",
    "run_export",
]
