"""The linear probe of the paper's Appendix B: a linear SVM (scikit-learn's) on fixed VGG descriptors, scored by
mean class accuracy, the measure of its Caltech results."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base.settings import POSITIVE, setting
from ..features import FeatureSet


@dataclass
class ProbeSettings:
    """``vggnet probe``: a linear SVM on feature files, scored on others."""

    train: str = setting(None, "features to fit on (vggnet features)", required=True, metavar="A.safetensors")
    test: str = setting(None, "features to score", required=True, metavar="B.safetensors")
    c: float = setting(1.0, "the SVM's regularisation C", POSITIVE)


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


def aligned_labels(train: FeatureSet, test: FeatureSet) -> torch.Tensor:
    """The test labels as indices into the training set's classes (matched by name)."""
    unknown = sorted(set(test.classes) - set(train.classes))
    if unknown:
        raise ValueError(f"the test set has classes the training set lacks: {', '.join(unknown[:10])}")
    if train.features.shape[1] != test.features.shape[1]:
        raise ValueError(
            f"the feature files disagree: {train.features.shape[1]}-d training features, "
            f"{test.features.shape[1]}-d test features (another layer or model?)"
        )
    index = torch.tensor([train.classes.index(c) for c in test.classes])
    return index[test.labels]


def linear_probe(train: FeatureSet, test: FeatureSet, c: float = 1.0) -> ProbeReport:
    """Fit a linear SVM (one-vs-rest, squared hinge, regularisation ``c``) on ``train``; score it on ``test``."""
    from sklearn.svm import LinearSVC

    if c <= 0:
        raise ValueError(f"the SVM's C must be positive, got {c}")
    target = aligned_labels(train, test)
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
