import io

import vggnet.training.metrics
from vggnet.training.metrics import Progress, write_csv


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_plain_line_every_few_seconds_not_carriage_returns(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(vggnet.training.metrics.time, "monotonic", clock)
    log = io.StringIO()  # not a TTY
    progress = Progress(100, desc="epoch 1/5", every=30.0, stream=log)
    for step in range(1, 101):
        clock.now += 1.0  # one step a second: a line at steps 30, 60, 90
        progress.update(step, f"loss {1 / step:.3f}")
    progress.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines == [
        "epoch 1/5: step 30/100 (30%), loss 0.033",
        "epoch 1/5: step 60/100 (60%), loss 0.017",
        "epoch 1/5: step 90/100 (90%), loss 0.011",
    ]


def test_a_terminal_gets_a_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = Progress(10, desc="epoch 2/5", stream=screen)
    progress.update(5, "loss 0.5")
    progress.close()
    assert "epoch 2/5" in screen.getvalue() and "\r" in screen.getvalue()


def test_metrics_csv_has_the_columns_in_order(tmp_path):
    path = write_csv([{"epoch": 1, "step": 10, "lr": 0.1, "train_loss": 2.0, "extra": 5}], tmp_path / "m.csv")
    header, row = path.read_text().splitlines()
    assert header.startswith("epoch,step,lr,train_loss,train_top1_err") and row.startswith("1,10,0.1,2.0,")
