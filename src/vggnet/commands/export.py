"""``vggnet export``: TorchScript, ONNX and OpenVINO IR of a model (and a checked int8 copy), each checked against
PyTorch before success is said (:mod:`vggnet.export`)."""

from __future__ import annotations

import argparse

from ..export import ExportSettings, Int8Settings
from .command import Command, check_out_folder, parsed


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import check_options, run_export

    s, int8 = parsed(ExportSettings, args), parsed(Int8Settings, args)
    check_out_folder(s.out)
    check_options(tuple(s.format), s.opset, int8 if s.int8 else None)
    (loaded,) = s.load(one="export")
    run_export(s, loaded, int8 if s.int8 else None)
    return 0


COMMAND = Command(
    "export",
    "TorchScript and ONNX (dense head, dynamic batch and size), checked",
    cmd_export,
    (ExportSettings, Int8Settings),
)
