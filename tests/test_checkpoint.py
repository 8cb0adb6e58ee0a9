import os
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN

from vggnet.training.checkpoint import LIVE, SCHEDULE, TrainState, load_checkpoint, save_checkpoint
from vggnet.training.loop import train
from vggnet.training.settings import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "checkpoint_before_schedule.pt"


def run_python(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_checkpoint_holds_exactly_the_train_states_keys(tmp_path):
    train(TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(tmp_path / "run")))
    saved = load_checkpoint(tmp_path / "run")
    expected = {f.name for f in fields(TrainState) if f.name != "schedule"} | {"meta", "rng_cpu", "rng_cuda"}
    assert set(saved) == expected | set(SCHEDULE)  # the schedule's state under the names it always had
    assert set(LIVE) - {"schedule"} <= set(saved) and saved["epoch"] == 1 and saved["step"] == 0
    assert len(saved["history"]) == 1
    old = load_checkpoint(OLD)  # written before the schedule was one object: the same keys, the same shapes
    assert set(saved) == set(old) and set(saved["plateau"]) == set(old["plateau"])
    with pytest.raises(ValueError, match="lacks epoch"):
        state = TrainState(*[None] * 4, config={}, stats={}, classes=[], crop=32)
        state.load_state_dict({k: v for k, v in saved.items() if k != "epoch"})


def test_a_run_checkpointed_by_the_earlier_trainer_resumes_with_its_schedule(tmp_path):
    """tests/data/checkpoint_before_schedule.pt: a 4-epoch run (patience 0) that the trainer of before the Schedule
    stopped at step 14, in its second epoch. It resumes: its plateau rule's best (its first epoch's accuracy) and
    count go on, every rate after the first follows the rule from the validations recorded, and the run ends."""
    old = load_checkpoint(OLD)
    (tmp_path / "run").mkdir()
    shutil.copy(OLD, tmp_path / "run" / "last.pt")
    result = train(TrainConfig(out=str(tmp_path / "run"), resume=True, epochs=4, progress=False, tensorboard=False))
    assert result.status == "finished" and result.history[0] == old["history"][0] and len(result.history) == 4
    best, bad, lr = old["plateau"]["best"], old["plateau"]["num_bad_epochs"], old["history"][0]["lr"]
    assert best == 1 - old["history"][0]["val_top1_err"] and old["decays"] == 0
    for before, after in zip(result.history[1:], result.history[2:]):
        top1 = 1 - before["val_top1_err"]
        bad = 0 if top1 > best * (1 + 1e-3) else bad + 1
        best = max(best, top1)
        lr = lr * 0.1 if bad > 0 else lr  # patience 0: the first epoch without improvement divides the rate
        bad = 0 if bad > 0 else bad
        assert after["lr"] == pytest.approx(lr), result.history


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
