"""What a file is, decided in one place (vggnet.formats.FORMATS): the README's table is the registry's, a shared
suffix is told apart once, and a new format is one entry."""

import re
import shutil
from pathlib import Path

import pytest
from helpers import tiny

import vggnet
from vggnet.commands.info import InfoSettings
from vggnet.formats import FORMATS, Format, format_lines, identify, markdown_table, read_weights_file, suffixes

ROOT = Path(__file__).resolve().parents[1]


def readme_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("| format | suffixes | what it is |", 1)[1].split("\n\n", 1)[0]
    return [line for line in table.strip().splitlines()[1:]]


def test_the_readmes_table_of_formats_is_the_registrys():
    rows = readme_rows()
    named = [row.split("|")[1].strip() for row in rows]
    assert named == [f.name for f in FORMATS], "the README's table names every registry entry, and no other"
    assert "\n".join(["| format | suffixes | what it is |", "|---|---|---|", *rows]) == markdown_table()
    for row, f in zip(rows, FORMATS):
        assert re.findall(r"`(\.\w+)`", row) == list(f.suffixes) and f.description in row


def test_a_file_is_identified_once_an_exported_onnx_apart_from_onnx_weights(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph([], "g", [], [])
    exported = helper.make_model(graph)
    helper.set_model_props(exported, {"vggnet_classes": '["a"]'})
    onnx.save(exported, str(tmp_path / "exported.onnx"))
    onnx.save(helper.make_model(graph), str(tmp_path / "weights.onnx"))
    assert identify(tmp_path / "exported.onnx").name == "vggnet ONNX" and identify(tmp_path / "exported.onnx").exported
    assert identify(tmp_path / "weights.onnx").name == "ONNX" and not identify(tmp_path / "weights.onnx").exported
    assert identify(tmp_path / "missing.onnx").exported  # said as a model to run: "no such exported model"
    assert identify("model.xml").name == "OpenVINO IR" and identify("W.CAFFEMODEL").name == "Caffe"
    assert identify("weights.whatever").name == "PyTorch" and identify("torchvision").name == "PyTorch"
    with pytest.raises(ValueError, match="exported.onnx is an exported ONNX model: .* not trained"):
        read_weights_file(tmp_path / "exported.onnx")
    with pytest.raises(ValueError, match="no such weights file"):
        read_weights_file(tmp_path / "missing.pth")


def test_a_new_format_is_one_reader_and_one_entry(tmp_path, monkeypatch):
    model = tiny("vgg11", num_classes=3)
    saved = vggnet.save_weights(model, tmp_path / "w.safetensors")
    shutil.copy(saved, tmp_path / "w.vggw")
    entry = Format("test format", (".vggw",), "a format added by one entry", "pytorch:read_safetensors")
    monkeypatch.setattr("vggnet.formats.registry.FORMATS", [*FORMATS, entry])
    assert identify(tmp_path / "w.vggw") == entry and ".vggw" in suffixes()
    assert any(".vggw" in line and entry.description in line for line in format_lines())
    assert "| test format | `.vggw` |" in markdown_table()
    assert InfoSettings("w.vggw").file() == "w.vggw"  # named by its suffix, as every format's file is
    loaded = vggnet.load_model(tmp_path / "w.vggw")
    again = vggnet.load_weights(tiny("vgg11", num_classes=3), tmp_path / "w.vggw")
    for key, value in model.state_dict().items():
        assert loaded.model.state_dict()[key].equal(value) and again.state_dict()[key].equal(value)
