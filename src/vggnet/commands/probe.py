"""The linear probe of the paper's Appendix B: a linear SVM (scikit-learn's) on fixed VGG descriptors, scored by
mean class accuracy, the measure of its Caltech results."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch

from ..base.classes import ClassMatching, by_position_setting, class_map_setting
from ..base.settings import POSITIVE, setting
from ..inference.descriptors import FeatureSet, load_features
from .command import Command, parsed


@dataclass
class ProbeSettings:
    """``vggnet probe``: a linear SVM on feature files, scored on others."""

    train: str = setting(None, "features to fit on (vggnet features)", required=True, metavar="A.safetensors")
    test: str = setting(None, "features to score", required=True, metavar="B.safetensors")
    c: float = setting(1.0, "the SVM's regularisation C", POSITIVE)
    class_map: str | None = class_map_setting()
    classes_by_position: bool = by_position_setting()


@dataclass
class ProbeReport:
    classes: list[str]
    per_class: list[tuple[int, float]]  # (test images, accuracy) of each class; accuracy NaN where there are none
    accuracy: float  # over all test images

    @property
    def mean_class_accuracy(self) -> float:
        present = [acc for n, acc in self.per_class if n]
        return sum(present) / len(present)

    def table(self) -> str:
        lines = ["| class | test images | accuracy |", "|---|---|---|"]
        for name, (n, acc) in zip(self.classes, self.per_class):
            if n:
                lines.append(f"| {name} | {n} | {100 * acc:.2f}% |")
        return "\n".join(lines)


def aligned_labels(train: FeatureSet, test: FeatureSet, matching: ClassMatching | None = None) -> torch.Tensor:
    """The test labels as indices into the training set's classes, matched by name (:mod:`vggnet.base.classes`:
    through a class map, or by position, where ``matching`` asks)."""
    if train.features.shape[1] != test.features.shape[1]:
        raise ValueError(
            f"the feature files disagree: {train.features.shape[1]}-d training features, "
            f"{test.features.shape[1]}-d test features (another layer or model?)"
        )
    found = (matching or ClassMatching()).match(test.classes, train.classes, "the test set", "the training set")
    if found.note:
        print(f"note: {found.note}", file=sys.stderr)
    return torch.tensor(found.index, dtype=torch.long)[test.labels]


def linear_probe(
    train: FeatureSet, test: FeatureSet, c: float = 1.0, matching: ClassMatching | None = None
) -> ProbeReport:
    """Fit a linear SVM (one-vs-rest, squared hinge, regularisation ``c``) on ``train``; score it on ``test``, whose
    classes meet the training set's by name (``matching``: :func:`aligned_labels`)."""
    from sklearn.svm import LinearSVC

    if c <= 0:
        raise ValueError(f"the SVM's C must be positive, got {c}")
    target = aligned_labels(train, test, matching)
    present = torch.unique(train.labels)
    if len(present) < 2:
        raise ValueError(f"a linear probe needs training features of at least two classes, got {len(present)}")
    svm = LinearSVC(C=c, dual="auto", max_iter=5000)
    svm.fit(train.features.numpy(), train.labels.numpy())
    predicted = torch.from_numpy(svm.predict(test.features.numpy()))
    per_class = []
    for k in range(len(train.classes)):
        mask = target == k
        n = int(mask.sum())
        per_class.append((n, float((predicted[mask] == k).float().mean()) if n else float("nan")))
    accuracy = float((predicted == target).float().mean())
    return ProbeReport(list(train.classes), per_class, accuracy)


def cmd_probe(args: argparse.Namespace) -> int:
    s = parsed(ProbeSettings, args)
    report = linear_probe(load_features(s.train), load_features(s.test), s.c, ClassMatching.of(s))
    print(report.table())
    print(f"accuracy: {100 * report.accuracy:.2f}%")
    print(f"mean class accuracy: {100 * report.mean_class_accuracy:.2f}%")
    return 0


COMMAND = Command(
    "probe", "a linear SVM on feature files: mean class accuracy and a per-class table", cmd_probe, (ProbeSettings,)
)
