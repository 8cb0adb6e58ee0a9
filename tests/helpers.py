"""Builders shared by the tests."""

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import vggnet
from vggnet.data.fashion_mnist import FASHION_MNIST_DEBIAN
from vggnet.inference.loading import Loaded

needs_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_DEBIAN / "t10k-labels-idx1-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)


SERVED_CLASSES = ["cat", "dog", "owl"]  # the classes of conftest's ``weights``, the served model


def png(width: int, height: int, seed: int = 0, mode: str = "RGB") -> bytes:
    """A PNG of random pixels, the same for the same seed."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def small_weights(path: Path) -> Path:
    """A small VGG-11 with BN saved as a vggnet file: classes a, b, c; normalised about 0.5; crop and test scale 32."""
    model = vggnet.build("vgg11_bn", width=1 / 16, num_classes=3, pool_size=1, fc_width=16).eval()
    meta = {"classes": '["a", "b", "c"]', "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "32",
            "scale": "32"}  # fmt: skip
    return vggnet.save_weights(model, path, metadata=meta)


def tiny(arch="vgg11", **kw):
    """A narrow model (widths 4..32, fc 32) that keeps the paper's 7x7 head."""
    opts = dict(width=1 / 16, fc_width=32, num_classes=10)
    opts.update(kw)
    return vggnet.build(arch, **opts).eval()


def loaded(model, classes=None, crop=224):
    classes = classes or [f"c{i}" for i in range(model.num_classes)]
    return Loaded(model.eval(), classes, [0.5, 0.4, 0.3], [0.25, 0.25, 0.25], crop, "tiny")


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def saved_tiny(tmp_path, classes=("cat", "dog")):
    model = tiny("vgg11_bn", num_classes=len(classes))
    meta = {"classes": json.dumps(list(classes)), "mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]", "crop": "224"}
    return model, vggnet.save_weights(model, tmp_path / "tiny.safetensors", metadata=meta)


def make_folder(root: Path, bad: bool = True) -> Path:
    g = torch.Generator().manual_seed(0)
    for label, name in enumerate(["cat", "dog"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(6):
            arr = torch.randint(0, 255, (40 + i, 56, 3), generator=g, dtype=torch.uint8)
            arr[..., label] = 250
            Image.fromarray(arr.numpy()).save(folder / f"{i}.png")
    if bad:
        img = Image.fromarray(torch.randint(0, 255, (40, 50, 3), dtype=torch.uint8).numpy())
        img.convert("L").save(root / "cat" / "gray.png")
        img.convert("CMYK").save(root / "cat" / "cmyk.jpg")
        img.convert("RGBA").save(root / "dog" / "rgba.png")
        img.convert("P").save(root / "dog" / "palette.png")
        img.save(root / "dog" / "good.jpg")
        data = (root / "dog" / "good.jpg").read_bytes()
        (root / "dog" / "truncated.jpg").write_bytes(data[: len(data) // 2])
        (root / "cat" / "empty.jpg").write_bytes(b"")
        (root / "cat" / "notes.png").write_text("not an image at all")
    return root


# A training run small enough for a test: a 1/16-width VGG-11 with BN and a compact head, in float32.
TINY_TRAIN = dict(
    arch="vgg11_bn",
    width=1 / 16,
    pool_size=1,
    fc_width=32,
    init="xavier",
    amp="off",
    progress=False,
    tensorboard=False,
    normalize="meanstd",
)


def tiny_config(out, **settings):
    """A :class:`TrainConfig` of a tiny net on the synthetic set, one epoch of batches of 64, ``settings`` over it."""
    from vggnet.training import TrainConfig

    return TrainConfig(
        **{**TINY_TRAIN, "dataset": "synthetic", "epochs": 1, "batch_size": 64, "out": str(out), **settings}
    )


TINY_TRAIN_ARGS = [
    "train",
    "--dataset",
    "synthetic",
    "--arch",
    "vgg11_bn",
    "--width",
    "0.0625",
    "--pool-size",
    "1",
    "--fc-width",
    "32",
    "--init",
    "xavier",
    "--amp",
    "off",
    "--normalize",
    "meanstd",
    "--no-progress",
    "--no-tensorboard",
]


def headless_chromium(profile: Path, size: str = "1100,800"):
    """Debian's Chromium, headless, driven by Selenium (the test is skipped where it is not installed)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if not (browser and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them as root)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={size}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
