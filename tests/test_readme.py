"""The README's Python examples run as written (those that need no download or data of the reader's own)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"one README example with {containing!r}, found {len(found)}"
    return found[0]


def test_the_model_example_builds_what_its_comments_say():
    block = python_block("vggnet.vgg16_bn(")
    scope: dict = {}
    exec(block, scope)
    shapes = re.findall(r"^(\S.*?)\s+# (torch\.Size\(\[.*?\]\))", block, flags=re.M)
    assert shapes, "the example shows an output shape"
    for expression, shown in shapes:
        assert str(eval(expression, scope)) == shown, expression
    assert scope["vggnet"].CONFIGS["C"][:3] == [64, 64, "M"]


@pytest.mark.slow
def test_the_training_example_trains_and_writes_its_weights(tmp_path, monkeypatch):
    block = python_block("from vggnet.training import")
    monkeypatch.chdir(tmp_path)  # the example writes runs/try where it is run
    scope: dict = {}
    exec(block, scope)
    result = scope["result"]
    assert result.status == "finished" and 0.1 < result.best_val_acc <= 1  # better than chance after one epoch
    assert Path(result.weights) == Path("runs/try/model.safetensors") and Path(result.weights).is_file()
