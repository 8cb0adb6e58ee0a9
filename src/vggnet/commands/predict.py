"""Classifying images the paper's dense way, and drawing where the top class was seen."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..base.files import atomic_write
from ..base.progress import track
from ..base.settings import AT_LEAST_ONE, ProgressSettings, setting
from ..data.images import read_image
from ..data.sources import failures_sentence
from ..inference.folding import prepare
from ..inference.geometry import PREDICT_PROTOCOLS, centre_window, image_posteriors
from ..inference.gradcam import grad_cam_of_centre
from ..inference.loading import Loaded, ModelChoice
from ..network.model import VGG
from .command import Command, parsed
from .on_ray import CollectionFlags, on_ray


def dense_input(loaded: Loaded, path: str | os.PathLike, q: int, device: str | torch.device):
    """The image as decoded (C x H x W uint8, CPU) and as the net takes it: rescaled to Q, normalised, NHWC."""
    img = read_image(path, loaded.model.in_channels)
    x = loaded.inputs(img[None].to(device), q)
    return img, x.contiguous(memory_format=torch.channels_last)


@dataclass
class PredictSettings(ModelChoice):
    """``vggnet predict``: top-k classes of image files, a dense heat map and Grad-CAM."""

    images: list[str] = setting(
        [],
        "image files, folders (every image under them, sorted; other files left out, saying so) or lists of images "
        "(.txt, one path a line; a relative one from the current folder, else from the list's)",
        positional=True,
        metavar="IMAGE",
    )
    top: int = setting(5, "how many classes to print", AT_LEAST_ONE)
    scale: int | None = setting(None, "test scale Q (default: the one the model was validated at)", AT_LEAST_ONE)
    protocol: str = setting(
        "center",
        "center: the centre crop at the model's test scale and its mirror, as its validation measured; dense: the "
        "paper's fully convolutional net on the whole image; multicrop: 5 x 5 crops x 2 flips",
        choices=PREDICT_PROTOCOLS,
    )
    heatmap: str | None = setting(None, "draw the dense score map of the top class over the image", metavar="OUT.png")
    cam: str | None = setting(None, "draw the Grad-CAM map of the top class over the image", metavar="OUT.png")
    cam_layer: str = setting("relu5_3", "Grad-CAM's layer (or the last ReLU where the net has no relu5_3)")
    data: str | None = setting(
        None, "a collection, read as --ray reads it (an image folder DIR/<class>/*, a list of paths, Parquet)"
    )
    json: bool = setting(False, "one JSON object a line per image: its path and top classes with probabilities")
    out: str | None = setting(None, "with --ray: the folder of the Parquet rows (path, class, top classes)")


@torch.inference_mode()
def predict(
    loaded: Loaded,
    paths: list[str],
    top: int = 5,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    protocol: str = "center",
    skipped: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Top-``top`` classes and probabilities of each image at test scale Q = ``scale`` (default: the model's own),
    by ``protocol`` (see :func:`image_posteriors`; by default the geometry the model was validated at). With a
    ``skipped`` list, an image that does not read is skipped, its reason added there (``ValueError`` where none
    reads); without, it is a ``ValueError``."""
    if not paths:
        raise ValueError("no images given")
    loaded.check_head("predictions")
    if protocol not in PREDICT_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PREDICT_PROTOCOLS)}")
    q = scale or loaded.default_scale
    net = prepare(loaded.model, device)
    results = []
    for path in track(paths, desc="predict", estimate=True):
        try:
            _, x = dense_input(loaded, path, q, device)
        except ValueError as err:
            if skipped is None:
                raise
            print(f"warning: {err}; skipped", file=sys.stderr)
            skipped.append(str(err))
            continue
        p = image_posteriors(net, x, loaded.crop, protocol)[0].cpu()
        values, indices = p.topk(min(top, len(p)))
        results.append(
            {"image": str(path), "top": [(loaded.classes[i], v) for v, i in zip(values.tolist(), indices.tolist())]}
        )
    if skipped and not results:
        raise ValueError(failures_sentence(len(skipped), len(paths), skipped))
    return results


@torch.inference_mode()
def heatmap(
    loaded: Loaded, path: str, out: str | os.PathLike, scale: int | None = None, device: str | torch.device = "cpu"
) -> Path:
    """Draw the dense class score map of the image's top class over the image, as a PNG."""
    q = scale or loaded.default_scale
    img, x = dense_input(loaded, path, q, device)
    net = prepare(loaded.model, device)
    scores = net.score_map(x).float()
    probs = F.softmax(scores, 1)[0]  # K x h x w posteriors at each position of the dense net
    best = int(probs.mean((1, 2)).argmax())
    grid = F.interpolate(probs[best][None, None], size=img.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    title = (
        f"{Path(path).name}: {loaded.classes[best]} ({100 * float(probs[best].mean()):.1f}%), "
        f"{scores.shape[2]}x{scores.shape[3]} score map at Q={q}"
    )
    return draw_overlay(img, grid, title, f"P({loaded.classes[best]})", out)


def cam(
    loaded: Loaded,
    path: str,
    out: str | os.PathLike,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    layer: str = "relu5_3",
    target: int | None = None,
) -> Path:
    """Draw the Grad-CAM map of the image's top class (or ``target``) over the image rescaled to Q, as a PNG."""
    if not isinstance(loaded.model, VGG):
        raise ValueError(f"{loaded.source} is an exported model; Grad-CAM needs the PyTorch weights it came from")
    q = scale or loaded.default_scale
    img, x = dense_input(loaded, path, q, device)
    net = prepare(loaded.model, device)
    # the model looks at the centre crop of the image at its test scale, as in its validation: so does Grad-CAM
    crop = min(loaded.crop, *x.shape[-2:])
    with torch.no_grad():
        probs = F.softmax(net(centre_window(x, crop)).float(), 1)[0]
    chosen = int(probs.argmax()) if target is None else target
    heat = grad_cam_of_centre(net, x, crop, chosen, layer, loaded.pad)
    grid = F.interpolate(heat[None, None], size=img.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    title = f"{Path(path).name}: Grad-CAM of {loaded.classes[chosen]} ({100 * float(probs[chosen]):.1f}%) at Q={q}"
    return draw_overlay(img, grid.clamp(0, 1), title, "Grad-CAM", out)


def draw_overlay(img: torch.Tensor, grid: torch.Tensor, title: str, label: str, out: str | os.PathLike) -> Path:
    """A map in [0, 1] (H x W) drawn over a uint8 image (C x H x W), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[1] / img.shape[2] + 0.4))
    shown = img.permute(1, 2, 0).squeeze(-1).numpy()
    ax.imshow(shown, cmap="gray" if img.shape[0] == 1 else None)
    overlay = ax.imshow(grid.cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04, label=label)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    target = Path(out)
    atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return target


def images_to_predict(s: PredictSettings) -> list[str]:
    """The images ``vggnet predict`` was given: files, folders and lists (:mod:`vggnet.data.listing`) and the
    collection of ``--data``, read as ``--ray`` reads it; what a folder holds besides images is said, once."""
    from ..data.listing import images_named, left_out_sentence

    images, left_out = images_named(s.images)
    if s.data:
        from ..cluster.collection import collection_rows

        here = os.getcwd()  # the collection's rows are absolute (as Ray needs them); shown as the user named them
        paths = [row["path"] for row in collection_rows(s.data)]
        images += [os.path.relpath(path) if path.startswith(here + os.sep) else path for path in paths]
    if left_out:
        print(f"note: {left_out_sentence(left_out)}", file=sys.stderr)
    if not images:
        raise ValueError("give the images: IMAGE files, folders or lists of them, or --data COLLECTION")
    return images


def result_line(result: dict[str, Any], as_json: bool = False) -> str:
    """One line per image: ``cat.png: cat 91.20%, dog 5.10%`` or, ``as_json``, a JSON object."""
    if as_json:
        top = [{"class": name, "probability": p} for name, p in result["top"]]
        return json.dumps({"image": result["image"], "top": top})
    return f"{result['image']}: " + ", ".join(f"{name} {100 * p:.2f}%" for name, p in result["top"])


def run_predict(s: PredictSettings, loaded: Loaded, images: list[str]) -> None:
    """``vggnet predict``: print each image's top classes, a line each; draw the heat map and Grad-CAM where asked."""
    skipped: list[str] | None = [] if len(images) > 1 else None  # one unreadable image of many is a warning
    for result in predict(loaded, images, s.top, s.scale, s.device, s.protocol, skipped):
        print(result_line(result, s.json), flush=True)
    if skipped:
        print(f"warning: {failures_sentence(len(skipped), len(images), skipped)}", file=sys.stderr)
    if s.heatmap:
        print(f"wrote {heatmap(loaded, images[0], s.heatmap, s.scale, s.device)}")
    if s.cam:
        print(f"wrote {cam(loaded, images[0], s.cam, s.scale, s.device, s.cam_layer)}")


def cmd_predict(args: argparse.Namespace) -> int:
    s, ray = parsed(PredictSettings, args), parsed(CollectionFlags, args)
    if ray.ray:
        from ..cluster.collection import Job

        job = Job("predict", scales=[s.scale] if s.scale else None, top=s.top, protocol=s.protocol)
        return on_ray(s, ray, s.data, None, None, job)
    drawn = [flag for flag, value in (("--heatmap", s.heatmap), ("--cam", s.cam)) if value]
    if drawn and len(s.images) + bool(s.data) != 1:
        raise ValueError(f"{drawn[0]} draws one image; give a single IMAGE")
    (loaded,) = s.load(one="predict")  # the model's flags first, as every command checks them
    images = images_to_predict(s)
    if drawn and len(images) != 1:
        raise ValueError(f"{drawn[0]} draws one image; {s.images[0] if s.images else s.data} holds {len(images)}")
    run_predict(s, loaded, images)
    return 0


COMMAND = Command(
    "predict",
    "top-k classes of images, Grad-CAM, and a heat map of the dense class scores",
    cmd_predict,
    (PredictSettings, CollectionFlags, ProgressSettings),
)
