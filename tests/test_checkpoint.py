import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN

from vggnet.training.checkpoint import LIVE, TrainState, load_checkpoint, save_checkpoint
from vggnet.training.loop import train
from vggnet.training.settings import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def run_python(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_checkpoint_holds_exactly_the_train_states_keys(tmp_path):
    train(TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(tmp_path / "run")))
    saved = load_checkpoint(tmp_path / "run")
    expected = {f.name for f in fields(TrainState)} | {"meta", "rng_cpu", "rng_cuda"}
    assert set(saved) == expected
    assert set(LIVE) <= expected and saved["epoch"] == 1 and saved["step"] == 0 and len(saved["history"]) == 1
    with pytest.raises(ValueError, match="lacks epoch"):
        state = TrainState(*[None] * 4, config={}, stats={}, classes=[], crop=32)
        state.load_state_dict({k: v for k, v in saved.items() if k != "epoch"})


@pytest.mark.slow
def test_a_checkpoint_write_killed_half_way_leaves_the_previous_one(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    script = f"""
import os, torch
import vggnet.training.checkpoint as c
def dying_save(obj, f):  # the checkpoint is written through an open file
    f.write(b"PK\\x03\\x04" + b"x" * 1000)
    f.flush()
    os._exit(9)  # killed in the middle of the write
c.torch.save = dying_save
c.save_checkpoint({{"model": {{"w": torch.zeros(3)}}, "epoch": 2}}, {str(path)!r})
"""
    assert run_python(["-c", script]).returncode == 9
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)
