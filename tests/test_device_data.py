"""The device-side image pipeline (decode and augment where training runs), exercised on the CPU."""

from pathlib import Path

import pytest
import torch
from helpers import make_folder
from PIL import Image

from vggnet.data.device import DeviceImageFolder, decodes_on_device
from vggnet.data.folders import ImageFolder
from vggnet.data.opening import open_datasets
from vggnet.training.settings import TrainConfig


def photos(root: Path) -> Path:
    """A train/val folder of JPEGs and PNGs of different sizes, with the usual bad files in train."""
    make_folder(root / "train", bad=True)
    make_folder(root / "val", bad=False)
    g = torch.Generator().manual_seed(1)
    for i in range(3):
        arr = torch.randint(0, 255, (50 + 7 * i, 64, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(arr).save(root / "val" / "dog" / f"photo{i}.jpg", quality=90)
    good = (root / "val" / "dog" / "photo0.jpg").read_bytes()
    broken = good[:200] + bytes(len(good) - 202) + good[-2:]  # markers intact, the data inside is not
    (root / "train" / "cat" / "inside.jpg").write_bytes(broken)
    return root


def settings(root, **kw):
    return TrainConfig(dataset="folder", data=str(root), scale=[40, 48], crop=32, workers=0, normalize="meanstd", **kw)


def test_validation_batches_equal_the_cpu_pipeline(tmp_path):
    root = photos(tmp_path / "data")
    cfg = settings(root)
    cpu = open_datasets(cfg)
    device = open_datasets(cfg, stats=cpu.stats, folder=DeviceImageFolder)
    order = list(range(len(cpu.val)))
    a = list(cpu.val.batches(order, 5, epoch=0))
    b = list(device.val.batches(order, 5, epoch=0))
    assert len(a) == len(b) == 3
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        assert xb.shape[1:] == (3, 32, 32) and torch.equal(ya, yb)
        torch.testing.assert_close(xb, xa, rtol=0, atol=1e-5)


def test_training_batches_are_deterministic_resumable_and_augmented(tmp_path):
    root = photos(tmp_path / "data")
    data = open_datasets(settings(root, colour_shift=0.1), folder=DeviceImageFolder)
    order = list(range(len(data.train)))
    first = list(data.train.batches(order, 4, epoch=3))
    again = list(data.train.batches(order, 4, epoch=3))
    tail = list(data.train.batches(order, 4, epoch=3, start=2))
    other = list(data.train.batches(order, 4, epoch=4))
    for (x, y, _), (x2, y2, _) in zip(first, again):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    for (x, _, _), (x2, _, _) in zip(first[2:], tail):
        assert torch.equal(x, x2)
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other) if len(a[0]) and len(b[0]))
    assert all(x.shape[1:] == (3, 32, 32) for x, _, _ in first if len(x))
    sides = {data.train.augmentation.draw(0, 0, i)[0] for i in range(200)}
    assert min(sides) == 40 and max(sides) == 48  # S jittered over [Smin, Smax]
    flips = sum(data.train.augmentation.draw(0, 0, i)[3] for i in range(400))
    assert 160 < flips < 240


def test_bad_files_are_skipped_and_named(tmp_path):
    root = photos(tmp_path / "data")
    data = open_datasets(settings(root), folder=DeviceImageFolder)
    good, bad = 0, []
    for _, y, skipped in data.train.batches(list(range(len(data.train))), 6, epoch=0):
        good += len(y)
        bad += skipped
    names = sorted(Path(b.split(": ")[0]).name for b in bad)
    assert names == ["empty.jpg", "inside.jpg", "notes.png", "truncated.jpg"] and good == len(data.train) - 4
    assert any("corrupt JPEG" in b for b in bad if "inside.jpg" in b)


def test_the_choice_of_decoder():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not decodes_on_device("auto", cpu) and decodes_on_device("auto", cuda)
    assert not decodes_on_device("cpu", cuda) and decodes_on_device("gpu", cuda)
    with pytest.raises(ValueError, match="--decode gpu needs a CUDA device"):
        decodes_on_device("gpu", cpu)
    with pytest.raises(ValueError, match="unknown --decode 'nvjpeg'"):
        decodes_on_device("nvjpeg", cpu)
    assert issubclass(DeviceImageFolder, ImageFolder)
