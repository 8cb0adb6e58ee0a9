"""``vggnet features``: its flags (:class:`FeatureSettings`), and the command: one descriptor per image
(:func:`vggnet.inference.descriptors.extract_features`), saved as safetensors."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..base.classes import ClassMatching, by_position_setting, class_map_setting
from ..base.files import folder_lock
from ..base.settings import AT_LEAST_ONE, ProgressSettings, setting
from ..data.sources import open_source
from ..inference.descriptors import extract_features, in_model_classes, save_features
from ..inference.loading import Loaded, ModelChoice
from .command import Command, parsed
from .on_ray import CollectionFlags, on_ray


@dataclass
class FeatureSettings(ModelChoice):
    """``vggnet features``: one descriptor per image (the paper's Appendix B), saved as safetensors."""

    cli_text: ClassVar[str] = (
        "Turn every image of a folder (DIR/<class>/*, or DIR/SPLIT/<class>/*) or a Fashion-MNIST split into one "
        "vector: the layer's dense map averaged over space, the mirror image and the scales Q, then L2-normalised. "
        "Writes tensors features (N x D) and labels (N), metadata classes and files. The labels are the folder's "
        "classes, or, with --class-map or --classes-by-position, the model's classes they match."
    )

    data: str = setting(None, "an image folder, or fashion-mnist / fashion-mnist-scaled", required=True)
    split: str | None = setting(None, "train, val, test ...: DIR/SPLIT, or the Fashion-MNIST split (default test)")
    layer: str = setting("relu7", "a Caffe layer name (relu7: fc7 after its ReLU, the paper's)")
    scales: list[int] | None = setting(None, "test scales Q, averaged (default: the model's own)", AT_LEAST_ONE)
    flip: bool = setting(True, "average with the mirror image (--no-flip leaves it out)")
    l2: bool = setting(True, "L2-normalise the descriptors (--no-l2 leaves them as they are)")
    limit: int | None = setting(None, "only the first N images", AT_LEAST_ONE)
    out: str = setting(None, "where to write the features", required=True, metavar="FILE.safetensors")
    class_map: str | None = class_map_setting()
    classes_by_position: bool = by_position_setting()


def run_features(s: FeatureSettings, loaded: Loaded) -> Path:
    """``vggnet features``: extract, save, and say what was written."""
    source = open_source(s.data, 64, False, s.limit, s.split, loaded.model.in_channels)
    found = extract_features(loaded, source, s.layer, s.scales, s.flip, s.l2, s.device)
    if s.class_map or s.classes_by_position:
        found = in_model_classes(found, loaded, ClassMatching.of(s))
    path = save_features(found, s.out)
    shape = found.features.shape
    print(f"wrote {path}: {shape[0]} images x {shape[1]} ({s.layer}), {len(found.classes)} classes")
    if source.skipped:
        print(f"warning: {source.skipped_sentence()}", file=sys.stderr)
    return path


def cmd_features(args: argparse.Namespace) -> int:
    s, ray = parsed(FeatureSettings, args), parsed(CollectionFlags, args)
    if ray.ray:
        from ..cluster.collection import Job

        if s.class_map or s.classes_by_position:
            raise ValueError(
                "with --ray each row carries its folder's class name; --class-map and "
                "--classes-by-position label a local features file"
            )
        job = Job("features", s.layer, s.scales, s.flip, s.l2)
        return on_ray(s, ray, s.data, s.split, s.limit, job)
    if not s.out.endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {s.out}")
    (loaded,) = s.load(one="features")
    with folder_lock(s.out, "feature file"):
        run_features(s, loaded)
    return 0


COMMAND = Command(
    "features",
    "one descriptor per image (the paper's Appendix B), saved as safetensors",
    cmd_features,
    (FeatureSettings, CollectionFlags, ProgressSettings),
)
