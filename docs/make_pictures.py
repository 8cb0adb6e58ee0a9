"""The README's worked example, run: a perceptual + style loss in a ten-line training loop, and Grad-CAM, on
Fashion-MNIST with the main job's network as the loss network and the model explained.

    python docs/make_pictures.py runs/fashion_mnist_*/model.safetensors     # writes docs/perceptual.png, gradcam.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import vggnet  # noqa: E402
from vggnet.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from vggnet.inference.gradcam import grad_cam  # noqa: E402
from vggnet.losses import PerceptualLoss, StyleLoss  # noqa: E402


def sharpen(weights: str) -> tuple[torch.Tensor, ...]:
    """The README's loop: a small network learns to undo a 4x blur, judged by the VGG's features and textures."""
    torch.manual_seed(0)
    # --- the README's ten lines ---
    vgg = vggnet.load_model(weights)  # a trained VGG, with its input normalisation
    content = PerceptualLoss(vgg, layers={"relu2_1": 1.0, "relu3_1": 1.0})
    style = StyleLoss(vgg, layers={"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0})
    sharp = load_fashion_mnist(split="train").images[:2048].float() / 255  # N x 1 x 32 x 32, in [0, 1]
    blurred = F.interpolate(F.avg_pool2d(sharp, 4), scale_factor=4, mode="bilinear")
    conv, relu = torch.nn.Conv2d, torch.nn.ReLU
    net = torch.nn.Sequential(
        conv(1, 32, 3, padding=1), relu(), conv(32, 32, 3, padding=1), relu(), conv(32, 1, 3, padding=1)
    )
    optimizer = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(600):
        i = torch.randint(0, len(sharp), (64,))
        out = (blurred[i] + net(blurred[i])).clamp(0, 1)
        loss = content(out, sharp[i]) + 1e4 * style(out, sharp[i])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # --- end ---
    test = load_fashion_mnist(split="test").images[:8].float() / 255
    test_blurred = F.interpolate(F.avg_pool2d(test, 4), scale_factor=4, mode="bilinear")
    with torch.no_grad():
        restored = (test_blurred + net(test_blurred)).clamp(0, 1)
    return test_blurred, restored, test


def main() -> int:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    weights = sys.argv[1]
    rows = sharpen(weights)
    fig, axes = plt.subplots(3, 8, figsize=(10, 4))
    for r, (label, images) in enumerate(zip(("blurred (input)", "restored", "original"), rows)):
        for c in range(8):
            axes[r, c].imshow(images[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(label, fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "perceptual.png", dpi=80)
    plt.close(fig)

    loaded = vggnet.load_model(weights)
    test = load_fashion_mnist(split="test")
    x = loaded.inputs(test.originals[:8])  # the 28 x 28 images brought to the model's geometry (padded to 32)
    images = test.images[:8]  # what it sees
    cams = grad_cam(loaded.model, x, layer="relu3_1")  # the top class of each image; an 8 x 8 map
    with torch.no_grad():
        top = loaded.model(x).argmax(1)
    fig, axes = plt.subplots(1, 8, figsize=(10, 1.9))
    for c in range(8):
        axes[c].imshow(images[c, 0].numpy(), cmap="gray")
        axes[c].imshow(cams[c].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[c].set_title(loaded.classes[top[c]], fontsize=8)
        axes[c].axis("off")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "gradcam.png", dpi=80)
    plt.close(fig)
    print(f"wrote {ROOT / 'docs' / 'perceptual.png'} and {ROOT / 'docs' / 'gradcam.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
