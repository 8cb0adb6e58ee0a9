import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN, TINY_TRAIN_ARGS, make_folder, needs_fashion, tiny_config
from safetensors.torch import load_file

import vggnet
from vggnet.cli import main
from vggnet.training.checkpoint import load_checkpoint
from vggnet.training.loop import train
from vggnet.training.settings import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def run_python(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


@needs_fashion
@pytest.mark.slow
def test_a_tiny_model_learns_a_fashion_mnist_subset(tmp_path):
    settings = dict(width=0.125, fc_width=64, dropout=0.1, subset=3000, epochs=3, lr=0.05, schedule="onecycle")
    result = train(tiny_config(tmp_path / "run", dataset="fashion-mnist", **settings))
    assert result.status == "finished" and result.exit_code == 0
    history = result.history
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]
    assert 1 - history[-1]["val_top1_err"] > 0.6  # chance is 0.1
    for name in ("last.pt", "best.pt", "model.safetensors", "metrics.csv", "curves.png", "data_stats.json"):
        assert (tmp_path / "run" / name).is_file(), name
    csv = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,step,lr,train_loss") and len(csv) == 4
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def synthetic_config(out, **kw):
    return TrainConfig(
        **{**TINY_TRAIN, "dataset": "synthetic", "epochs": 2, "batch_size": 32, "lr": 0.02, "out": str(out), **kw}
    )


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    straight = train(synthetic_config(tmp_path / "a"))
    stopped = train(synthetic_config(tmp_path / "b", max_steps=21))  # 16 steps an epoch: stops mid-epoch 2
    assert (stopped.status, stopped.exit_code, stopped.epoch, stopped.step) == ("max_steps", 0, 1, 5)
    assert load_checkpoint(tmp_path / "b")["step"] == 5
    resumed = train(synthetic_config(tmp_path / "b", resume=True))
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.weights_digest == straight.weights_digest


def test_validating_every_other_epoch_trains_the_same_weights(tmp_path, capsys):
    every = train(synthetic_config(tmp_path / "a", epochs=3, schedule="onecycle"))
    sparse = train(synthetic_config(tmp_path / "b", epochs=3, schedule="onecycle", val_every=2))
    assert sparse.weights_digest == every.weights_digest  # validation changes nothing but the report
    assert ["val_top1_err" in h for h in sparse.history] == [False, True, True]  # epoch 2, and the last
    assert sparse.val_top1_err == every.val_top1_err
    assert "not validated (every 2 epochs)" in capsys.readouterr().out
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert rows[1].split(",")[5:8] == ["", "", ""] and rows[2].split(",")[5] != ""
    assert (tmp_path / "b" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="plateau schedule validates every epoch"):
        train(synthetic_config(tmp_path / "c", val_every=2))


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    full = train(synthetic_config(tmp_path / "a", epochs=1, dropout=0.0, arch="vgg11"))
    accumulated = train(synthetic_config(tmp_path / "b", epochs=1, dropout=0.0, arch="vgg11", micro_batch=8))
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert accumulated.history[0]["train_loss"] == pytest.approx(full.history[0]["train_loss"], rel=1e-4)


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_and_resumes(tmp_path):
    common = ["-m", "vggnet", *TINY_TRAIN_ARGS, "--epochs", "2", "--batch-size", "8"]
    proc = run_python([*common, "--out", str(tmp_path / "b"), "--save-every", "1"])
    deadline = time.time() + 60
    while not (tmp_path / "b" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "received SIGTERM" in output and "--resume" in output
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert state["epoch"] == 0 and 0 < state["step"] < 64  # mid-epoch
    # the command the run printed, as it is: the run's own settings (--epochs 2 among them) come from its checkpoint
    resumed = run_python(["-m", "vggnet", "train", "--out", str(tmp_path / "b"), "--resume"])
    straight = run_python([*common, "--out", str(tmp_path / "a")])
    for p in (resumed, straight):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_two_processes_hold_identical_weights(tmp_path):
    ddp = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vggnet"]
    proc = run_python(
        [
            *ddp,
            *TINY_TRAIN_ARGS,
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "ddp"),
        ]
    )
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    assert "weights identical on all 2 ranks" in output
    assert "x 2 processes" in output and "(16 x 1 per process)" in output
    assert output.count("epoch 2/2:") == 1  # only rank 0 reports
    assert len((tmp_path / "ddp" / "metrics.csv").read_text().splitlines()) == 3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(synthetic_config(out, epochs=1))
    good = load_checkpoint(out)
    import vggnet.training.loop as train_module

    real, calls = train_module.F.cross_entropy, []

    def poisoned(logits, y, **kw):
        calls.append(1)
        loss = real(logits, y, **kw)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(train_module.F, "cross_entropy", poisoned)
    result = train(synthetic_config(out, epochs=2, resume=True))
    assert (result.status, result.exit_code) == ("diverged", 3)
    assert "loss is nan at epoch 2, step 3" in result.message and str(out / "last.pt") in result.message
    after = load_checkpoint(out)
    assert after["epoch"] == good["epoch"] == 1
    assert all(torch.equal(after["model"][k], good["model"][k]) for k in good["model"])


def test_folder_training_skips_bad_files_and_strict_stops(tmp_path, capsys):
    root = tmp_path / "data"
    make_folder(root / "train")
    make_folder(root / "val", bad=False)
    cfg = dict(
        **{**TINY_TRAIN, "normalize": "mean"},
        dataset="folder",
        data=str(root),
        scale=[36, 44],
        crop=32,
        epochs=1,
        batch_size=8,
        workers=0,
    )
    result = train(TrainConfig(**cfg, out=str(tmp_path / "run")))
    err = capsys.readouterr()
    assert err.err.count("skipped bad image") == 3 and "truncated.jpg" in err.err
    assert "3 bad files skipped" in err.out
    # the 17 readable training images were counted, and all 12 validation images
    row = result.history[0]
    assert 17 * row["train_top1_err"] == pytest.approx(round(17 * row["train_top1_err"]))
    assert 12 * row["val_top1_err"] == pytest.approx(round(12 * row["val_top1_err"]))
    with pytest.raises(ValueError, match="bad image .*--strict"):
        train(TrainConfig(**cfg, strict=True, out=str(tmp_path / "strict")))


def test_empty_class_folder_fails_before_training(tmp_path):
    root = tmp_path / "data"
    make_folder(root / "train", bad=False)
    (root / "train" / "empty_class").mkdir()
    make_folder(root / "val", bad=False)
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten(tmp_path):
    train(synthetic_config(tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="pass --resume"):
        train(synthetic_config(tmp_path / "run", epochs=1))


def test_preinit_from_a_trained_net_a_checkpoint(tmp_path):
    from vggnet.data.opening import open_datasets
    from vggnet.network.weights import read_file
    from vggnet.training.setup import make_model

    train(synthetic_config(tmp_path / "a", epochs=1, arch="vgg11"))
    net_a = read_file(tmp_path / "a" / "model.safetensors")
    cfg = synthetic_config(tmp_path / "d", arch="vgg16", preinit=str(tmp_path / "a" / "model.safetensors"))
    deeper, _ = make_model(cfg, open_datasets(cfg))
    torch.testing.assert_close(deeper.layer("conv1_1").weight, net_a["features.0.weight"])
    torch.testing.assert_close(deeper.layer("conv3_2").weight, net_a["features.8.weight"])  # A's conv3_2
    torch.testing.assert_close(deeper.layer("fc7").weight, net_a["classifier.3.weight"])
    assert not torch.equal(deeper.layer("conv1_2").weight[:, :3], net_a["features.0.weight"][:, :3])


def test_validation_with_the_mirror_averages_the_two_posteriors():
    import torch.nn.functional as F

    from vggnet.data.memory import synthetic
    from vggnet.training import distributed
    from vggnet.training.validate import evaluate_split

    data = synthetic(40, num_classes=4).bind(mean=[0.5] * 3, std=[0.25] * 3, augment=False)
    model = vggnet_tiny()
    ctx = distributed.Context()
    plain = evaluate_split(model, data, 16, ctx)
    both = evaluate_split(model, data, 16, ctx, flip=True)
    x, y = next(data.batches(range(40), 40, epoch=0))[:2]
    with torch.no_grad():
        p = (F.softmax(model(x), 1) + F.softmax(model(x.flip(3)), 1)) / 2
    assert both["top1"] == pytest.approx((p.argmax(1) == y).float().mean().item())
    assert both["loss"] == pytest.approx(F.nll_loss(p.log(), y).item(), rel=1e-4)
    assert plain["loss"] != pytest.approx(both["loss"])


def vggnet_tiny():
    from helpers import tiny

    model = tiny("vgg11_bn", num_classes=4, pool_size=1, init="xavier").eval()
    with torch.no_grad():
        model.classifier[6].weight.mul_(20)  # confident enough that the mirror changes the posteriors
    return model


def test_no_progress_means_no_progress_lines(tmp_path, capsys):
    cfg = TrainConfig(**{**TINY_TRAIN, "progress": True}, dataset="synthetic", epochs=1, batch_size=8, log_every=1e-9)
    train(TrainConfig(**{**cfg.to_dict(), "out": str(tmp_path / "on")}))
    assert "epoch 1/1: step " in capsys.readouterr().err  # a line per step in a log
    train(TrainConfig(**{**cfg.to_dict(), "progress": False, "out": str(tmp_path / "off")}))
    assert "step " not in capsys.readouterr().err


def test_cpu_bf16_is_native_only_with_avx512_bf16_or_amx():
    from vggnet.base.hardware import cpu_has_bf16

    ice_lake = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
    assert not cpu_has_bf16(ice_lake)  # oneDNN would emulate bf16 there, at half float32's speed
    assert cpu_has_bf16(ice_lake.replace("avx512_vnni", "avx512_vnni avx512_bf16"))  # Zen 4/5, Cooper Lake
    assert cpu_has_bf16(ice_lake.replace("avx512_vnni", "amx_bf16 amx_tile"))  # Sapphire Rapids


def test_a_typed_arch_that_contradicts_the_weights_is_refused_even_if_it_is_the_default(tmp_path, capsys):
    weights = vggnet.save_weights(vggnet.build("vgg13_bn", width=1 / 16, pool_size=1, fc_width=32, num_classes=4),
                                  tmp_path / "b.safetensors")  # fmt: skip
    base = ["train", "--dataset", "synthetic", "--weights", str(weights), "--epochs", "1", "--batch-size", "16",
            "--amp", "off", "--no-progress", "--no-tensorboard"]  # fmt: skip
    assert main([*base, "--arch", "vgg11", "--out", str(tmp_path / "a")]) == 2  # vgg11 is the default --arch
    assert "holds a vgg13_bn (pool 1, fc 32) that --arch contradict" in capsys.readouterr().err
    assert main([*base, "--arch", "vgg13_bn", "--out", str(tmp_path / "b")]) == 0  # agrees, whatever the width
    assert main([*base, "--width", "0.25", "--out", str(tmp_path / "c")]) == 2
    assert "that --width contradict" in capsys.readouterr().err
