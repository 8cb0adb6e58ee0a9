"""A head is initialised for its width (the paper's N(0, 0.01) kept on the paper's head), a small VGG trains, and a
run that sits at chance says so."""

import json
import math

import pytest
import torch
from PIL import Image

import vggnet
from vggnet.cli import main
from vggnet.training.metrics import stuck_at_chance

ARCH = '[16, "M", 32, "M"]'


def head_stds(model):
    return [round(m.weight.std().item(), 4) for m in model.classifier if isinstance(m, torch.nn.Linear)]


def test_a_compact_head_is_initialised_for_its_width_and_the_papers_head_as_the_paper_did():
    for init in ("kaiming", "normal"):
        compact = vggnet.build("vgg11", width=0.25, pool_size=1, fc_width=512, num_classes=10, init=init)
        fc6, fc7, fc8 = (m for m in compact.classifier if isinstance(m, torch.nn.Linear))
        assert fc6.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.05)  # He's, for the ReLU after
        assert fc7.weight.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.05)
        assert fc8.weight.std().item() == pytest.approx(math.sqrt(1 / 512), rel=0.1)  # scores of unit scale
        assert all(m.bias.abs().max() == 0 for m in (fc6, fc7, fc8))
        paper = vggnet.build("vgg11", width=0.25, init=init)  # 7 x 7 pool, 4,096 wide: N(0, 0.01), torchvision's too
        assert all(s == pytest.approx(0.01, rel=0.05) for s in head_stds(paper))
    xavier = vggnet.build("vgg11", width=0.25, pool_size=1, fc_width=512, init="xavier").classifier[3].weight
    assert xavier.abs().max() <= math.sqrt(6 / 1024)
    compact.reset_classifier(3)
    assert compact.classifier[6].weight.std().item() == pytest.approx(math.sqrt(1 / 512), rel=0.15)
    paper.reset_classifier(3)
    assert paper.classifier[6].weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_the_signal_keeps_its_scale_through_a_compact_head():
    torch.manual_seed(0)
    model = vggnet.VGG([16, "M", 32, "M"], num_classes=3, batch_norm=True, pool_size=1, fc_width=64).eval()
    scores = model(torch.randn(64, 3, 16, 16))
    assert 0.1 < scores.std().item() < 10  # N(0, 0.01) left it ~1e-4: no gradient to learn from


def colour_folder(root, per_class=16, side=16, seed=0):
    """train/ and val/ of solid red, green and blue images with noise added (the issue's folder, small)."""
    g = torch.Generator().manual_seed(seed)
    for split, count in (("train", per_class), ("val", 4)):
        for name, rgb in (("red", (230, 20, 20)), ("green", (20, 230, 20)), ("blue", (20, 20, 230))):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = torch.tensor(rgb).float() + 40 * torch.randn(side, side, 3, generator=g)
                Image.fromarray(pixels.clamp(0, 255).byte().numpy()).save(root / split / name / f"{i}.png")
    return root


def train_args(data, out, *extra):
    return ["train", "--data", str(data), "--arch", ARCH, "--batch-norm", "--init", "kaiming", "--pool-size", "1",
            "--fc-width", "64", "--crop", "16", "--scale", "16", "--batch-size", "8", "--workers", "0", "--amp", "off",
            "--no-progress", "--no-tensorboard", "--out", str(out), *extra]  # fmt: skip


def test_the_issues_small_vgg_learns_solid_colours(tmp_path, capsys):
    data = colour_folder(tmp_path / "rgb")
    assert main(train_args(data, tmp_path / "run", "--epochs", "3")) == 0
    captured = capsys.readouterr()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("val_top1_err")]) <= 0.1  # it sat at 66.67 % (chance), loss ln 3, before
    assert float(last[header.index("train_loss")]) < 0.8 * math.log(3)
    assert "at chance" not in captured.err


def test_a_run_at_chance_says_so_once_with_the_likely_causes(tmp_path, capsys):
    data = colour_folder(tmp_path / "rgb", per_class=8)
    assert main(train_args(data, tmp_path / "run", "--epochs", "3", "--lr", "1e-9")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the training loss has stayed at chance (ln 3 = 1.099) for 2 epochs") == 1
    line = next(line for line in err.splitlines() if "at chance" in line)
    for cause in ("--lr", "--init", "--normalize", "labels"):
        assert cause in line


def test_the_chance_rule():
    at, learning = {"train_loss": 2.31, "train_top1_err": 0.9}, {"train_loss": 1.2, "train_top1_err": 0.4}
    assert stuck_at_chance([at], 10, 5) is None  # one epoch says nothing
    assert "ln 10 = 2.303" in stuck_at_chance([at, at], 10, 5)
    assert stuck_at_chance([at, at, at], 10, 5) is None  # said once, on the epoch that made it so
    assert stuck_at_chance([at, at], 10, 20) is None and stuck_at_chance([at, at, at], 10, 20)  # 3 in longer runs
    assert stuck_at_chance([learning, at, at, at], 10, 20)  # it fell back to chance: said again
    assert stuck_at_chance([at, learning], 10, 5) is None and stuck_at_chance([learning] * 4, 10, 5) is None
    above = {"train_loss": 5.0, "train_top1_err": 0.91}  # worse than predicting nothing is no better
    assert stuck_at_chance([above, above], 10, 5)
    lucky = {"train_loss": 2.31, "train_top1_err": 0.5}  # accuracy well above chance: learning, loss aside
    assert stuck_at_chance([lucky, lucky], 10, 5) is None
    assert stuck_at_chance([{"train_loss": 0.0, "train_top1_err": 0.0}] * 2, 1, 5) is None


def test_a_reproduction_begun_with_the_old_head_initialisation_is_not_mixed(tmp_path):
    from vggnet.reproduce.plan import Settings, plan
    from vggnet.reproduce.runs import check_head_init, head_init

    bn = Settings(batch_norm=True, out=str(tmp_path / "bn"), nets=["A"], seeds=1, scale_seeds=0)
    runs = plan(bn)
    assert head_init(bn, runs) == "fan-in"  # kaiming on a 512-wide head
    (tmp_path / "bn").mkdir()
    (tmp_path / "bn" / "reproduce_settings.json").write_text(json.dumps({"batch_norm": True}))
    with pytest.raises(ValueError, match=r"initialised N\(0, 0.01\); this vggnet initialises them for their width"):
        check_head_init(bn, runs)
    (tmp_path / "bn" / "reproduce_settings.json").write_text(json.dumps({"batch_norm": True, "head_init": "fan-in"}))
    check_head_init(bn, runs)
    plain = Settings(out=str(tmp_path / "plain"), nets=["A"], seeds=1, scale_seeds=0)  # Glorot's: unchanged
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "reproduce_settings.json").write_text(json.dumps({"batch_norm": False}))
    assert head_init(plain, plan(plain)) == "xavier"
    check_head_init(plain, plan(plain))
