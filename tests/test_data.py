import gzip
import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_folder, needs_fashion
from PIL import Image

from vggnet.data.fashion_mnist import (
    FASHION_MNIST_DEBIAN,
    download_fashion_mnist,
    find_fashion_mnist,
    load_fashion_mnist,
    read_idx,
)
from vggnet.data.folders import ImageFolder
from vggnet.data.images import decode_image
from vggnet.data.memory import synthetic
from vggnet.data.transforms import eval_transform


def test_in_memory_batches_are_deterministic_and_resumable():
    data = synthetic(96, num_classes=3).bind(mean=[0.5] * 3, std=[0.25] * 3, augment=True, seed=5)
    kw = dict(epoch=2)
    full = list(data.batches(list(range(96)), 16, **kw))
    tail = list(data.batches(list(range(96)), 16, start=3, **kw))
    assert len(full) == 6 and len(tail) == 3
    for (a, ya, _), (b, yb, _) in zip(full[3:], tail):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    other = next(iter(data.batches(list(range(96)), 16, **{**kw, "epoch": 3})))[0]
    assert not torch.equal(other, full[0][0])


def test_balanced_subset():
    data = synthetic(100, num_classes=4).subset(20)
    assert len(data) == 20 and torch.bincount(data.labels).tolist() == [5, 5, 5, 5]


@needs_fashion
def test_fashion_mnist_from_debian_idx_files():
    test = load_fashion_mnist(split="test")
    assert test.images.shape == (10_000, 1, 32, 32) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert (test.images[:, :, :2] == 0).all()  # zero padding from 28 to 32
    assert test.classes[9] == "Ankle boot"


@needs_fashion
def test_fashion_mnist_download_from_a_url(tmp_path, monkeypatch):
    import vggnet.data.fashion_mnist

    source = tmp_path / "mirror"
    source.mkdir()
    for f in FASHION_MNIST_DEBIAN.glob("*.gz"):
        shutil.copy(f, source / f.name)
    target = tmp_path / "data"
    assert download_fashion_mnist(target, base_url=source.as_uri() + "/") == target
    assert len(list(target.glob("*.gz"))) == 4 and find_fashion_mnist(target) == target
    assert len(load_fashion_mnist(target, "test")) == 10_000
    # the cache is where vggnet downloads when no folder is given and Debian's files are absent
    monkeypatch.setenv("VGGNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(vggnet.data.fashion_mnist, "FASHION_MNIST_DEBIAN", tmp_path / "no-debian")
    monkeypatch.setattr(vggnet.data.fashion_mnist, "FASHION_MNIST_URL", source.as_uri() + "/")
    assert find_fashion_mnist() == tmp_path / "cache" / "fashion-mnist"


def test_idx_errors(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(path)
    path.write_bytes(b"garbage!")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)
    with pytest.raises(ValueError, match="holds neither Fashion-MNIST's idx files"):
        find_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        find_fashion_mnist(tmp_path / "nowhere")


def test_every_image_mode_becomes_rgb(tmp_path, monkeypatch):
    import vggnet.data.images

    def no_pillow(path):
        raise AssertionError(f"{path} should decode with torchvision, not the Pillow fallback")

    monkeypatch.setattr(vggnet.data.images, "_decode_with_pillow", no_pillow)
    root = make_folder(tmp_path / "imgs")
    for name in ["cat/gray.png", "cat/cmyk.jpg", "dog/rgba.png", "dog/palette.png"]:
        img = decode_image(root / name)
        assert img.shape == (3, 40, 50) and img.dtype == torch.uint8
    png16 = root / "g16.png"
    Image.fromarray((torch.rand(30, 40) * 65535).to(torch.int32).numpy().astype("uint16")).save(png16)
    img = decode_image(png16)
    assert img.shape == (3, 30, 40) and img.dtype == torch.uint8 and img.float().std() > 30


def test_bad_files_are_reported_not_fatal(tmp_path):
    root = make_folder(tmp_path / "imgs")
    folder = ImageFolder(root)
    assert folder.classes == ["cat", "dog"] and len(folder) == 12 + 8
    transform = eval_transform(40, 32, mean=(0, 0, 0))
    good, bad = 0, []
    for x, y, skipped in folder.bind(transform=transform).batches(range(len(folder)), 7, epoch=0):
        assert x.shape[1:] == (3, 32, 32) and len(x) == len(y)
        good += len(y)
        bad += skipped
    assert good == 17
    assert sorted(Path(b.split(": ")[0]).name for b in bad) == ["empty.jpg", "notes.png", "truncated.jpg"]
    assert all(": " in b and len(b.split(": ")[1]) > 3 for b in bad)  # each with its reason


def test_oversized_image_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(ValueError, match="more than the 10,000 allowed"):
        decode_image(path, max_pixels=10_000)


def test_empty_dataset_or_class_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        ImageFolder(tmp_path / "empty")
    root = make_folder(tmp_path / "imgs", bad=False)
    (root / "zebra").mkdir()
    with pytest.raises(ValueError, match="class folder .*zebra holds no images"):
        ImageFolder(root)
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolder(tmp_path / "missing")


def test_in_memory_crops_train_on_random_windows_and_validate_on_the_centre():
    from vggnet.data.opening import open_datasets
    from vggnet.training.settings import TrainConfig

    cfg = TrainConfig(dataset="synthetic", crop=28, normalize="meanstd", seed=3)
    data = open_datasets(cfg)
    assert data.crop == 28 and data.stats["scale"] == 32  # trained on 28 windows, tested on the whole 32 image
    raw = synthetic(128, seed=cfg.seed + 1).images.float() / 255
    x, _, _ = next(data.val.batches(range(8), 8, epoch=0))
    mean, std = data.stats["mean"][0], data.stats["std"][0]
    torch.testing.assert_close(x[:, :1] * std + mean, raw[:8, :1, 2:30, 2:30], rtol=0, atol=1e-5)
    first = next(data.train.batches(range(64), 64, epoch=0))[0]
    again = next(data.train.batches(range(64), 64, epoch=0))[0]
    assert first.shape == (64, 3, 28, 28) and torch.equal(first, again)
    centre = next(
        data.train.bind(mean=data.stats["mean"], std=data.stats["std"], augment=False).batches(range(64), 64, epoch=0)
    )[0]
    assert not torch.equal(first, centre)  # the windows move
    assert open_datasets(TrainConfig(dataset="synthetic", normalize="meanstd")).crop == 32  # crop 224: whole images


def test_the_papers_scales_in_memory_rescale_the_originals_then_crop():
    from vggnet.data.opening import open_datasets, open_raw
    from vggnet.inference.geometry import rescale
    from vggnet.training.settings import TrainConfig

    cfg = TrainConfig(dataset="synthetic", crop=28, scale=[32, 64], normalize="meanstd", seed=3, ceil_mode=True)
    data = open_datasets(cfg)
    assert (data.crop, data.stats["scale"], data.stats["pad"]) == (28, 48, 0)  # Q = (Smin + Smax) / 2
    x, _, _ = next(data.val.batches(range(8), 8, epoch=0))
    raw = open_raw(cfg, ImageFolder)[1].images[:8]
    expected = rescale(raw, 48, data.stats["mean"], data.stats["std"])[..., 10:38, 10:38]  # as test time does it
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)
    train_batches = list(data.train.batches(range(64), 32, epoch=1))
    assert train_batches[0][0].shape == (32, 3, 28, 28)
    tail = list(data.train.batches(range(64), 32, epoch=1, start=1))
    assert torch.equal(tail[0][0], train_batches[1][0])  # resumable: a function of (seed, epoch, position)
    # jittered S: the square in each image is drawn at its own scale (it covers a different share of the window)
    bright = (train_batches[0][0] > train_batches[0][0].mean()).float().mean((1, 2, 3))
    assert bright.std() > 0.02
    with pytest.raises(ValueError, match="training scale S must be at least the crop size 28, got S=20"):
        open_datasets(TrainConfig(dataset="synthetic", crop=28, scale=[20]))


@needs_fashion
def test_test_images_are_the_originals_and_models_record_how_to_reach_their_input():
    from vggnet.data.opening import open_datasets
    from vggnet.data.sources import open_source
    from vggnet.training.settings import TrainConfig

    images, _ = next(open_source("fashion-mnist", 16, limit=16).batches())
    assert images.shape == (16, 1, 28, 28)  # as the files a user has: no stored border
    for settings, geometry in [
        ({}, (28, 2, 32)),
        ({"crop": 28}, (28, 0, 28)),
        ({"crop": 28, "scale": [32]}, (32, 0, 28)),
    ]:
        data = open_datasets(TrainConfig(dataset="fashion-mnist", subset=100, **settings))
        assert (data.stats["scale"], data.stats["pad"], data.crop) == geometry


def test_a_validation_split_is_stratified_disjoint_and_fixed_by_the_seed():
    from vggnet.data.dataset import stratified_split

    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    kept, held = stratified_split(labels, 20, seed=3)
    assert len(held) == 20 and len(kept) == 80 and not set(kept.tolist()) & set(held.tolist())
    assert torch.bincount(labels[held]).tolist() == [12, 6, 2]  # each class in its share
    again, other = stratified_split(labels, 20, seed=3)[1], stratified_split(labels, 20, seed=4)[1]
    assert torch.equal(held, again) and not torch.equal(held, other)
    with pytest.raises(ValueError, match="must hold 1 to 99 of the 100 training images, got 100"):
        stratified_split(labels, 100, seed=0)


def test_training_with_a_validation_split_never_opens_the_test_set(tmp_path, monkeypatch):
    from helpers import TINY_TRAIN

    import vggnet.data.opening as datasets
    from vggnet.training import TrainConfig, train

    def refuse(*args, **kwargs):
        raise AssertionError("the test set was opened")

    monkeypatch.setattr(datasets, "open_test_set", refuse)
    cfg = TrainConfig(**TINY_TRAIN, dataset="synthetic", val_split=64, epochs=1, batch_size=64, out=str(tmp_path))
    result = train(cfg)
    assert result.status == "finished" and result.val_top1_err is not None
    rows = (tmp_path / "metrics.csv").read_text()
    assert "val_top1_err" in rows
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="the test set was opened"):
        monkeypatch.setattr(datasets, "open_test_set", refuse)
        train(TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(tmp_path / "b")))


@needs_fashion
def test_scaled_fashion_mnist_has_garments_at_many_sizes_and_places_and_is_the_same_every_time():
    from vggnet.data.fashion_mnist import load_scaled_fashion_mnist
    from vggnet.data.sources import open_source

    plain = load_fashion_mnist(None, "test")
    scaled = load_scaled_fashion_mnist(None, "test")
    assert scaled.images.shape == (10_000, 1, 64, 64) and torch.equal(scaled.labels, plain.labels)
    assert torch.equal(scaled.images[:50], load_scaled_fashion_mnist(None, "test").images[:50])  # deterministic
    ink = scaled.images[:2000, 0] > 0
    rows, cols = ink.any(2), ink.any(1)
    heights = rows.sum(1).float()
    tops = rows.float().argmax(1).float()
    assert heights.min() <= 16 and heights.max() >= 50  # garments from ~14 to ~56 pixels
    assert tops.std() > 5 and cols.float().argmax(1).float().std() > 5  # at many places
    train_scaled = load_scaled_fashion_mnist(None, "train")
    assert not torch.equal(train_scaled.images[:100], scaled.images[:100])  # its own seed
    source = open_source("fashion-mnist-scaled", 100, limit=100)
    images, labels = next(source.batches())
    assert images.shape == (100, 1, 64, 64) and torch.equal(labels, plain.labels[:100])
