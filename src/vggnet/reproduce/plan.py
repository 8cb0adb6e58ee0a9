"""The plan of the paper's experiments (Sect. 4, Tables 3-6): its settings, its runs and what each is evaluated on.

The procedure is the paper's: net A from random initialisation; B, C, D and E initialised from the trained A (its
first four convolutions and three FC layers, :func:`vggnet.network.layers.preinit_from`), the rest random; the nets
at the large S initialised from the same net at the small S with a learning rate of 1e-3, and the jittered-S nets
fine-tuned from the large-S ones; SGD with momentum 0.9, weight decay 5e-4, dropout 0.5, the rate divided by 10 on
a validation plateau; no batch normalisation. ``batch_norm=True`` runs the same plan with BN nets, each from scratch
(today's practice). Scales keep the paper's ratios to the crop, so a 28-pixel crop is the paper's geometry in
miniature (S = 32 for 256, 48 for 384, [32, 64] for [256, 512]); pools round up as the authors' Caffe did.

Two groups of runs: the nets (A to E at the small S) on the main data, and the training scales (the small, large and
jittered S of ``scale_nets``) on data whose objects come at many sizes (``fashion-mnist-scaled`` for Fashion-MNIST,
whose garments all fill one centred frame; the same data for an image folder such as ImageNet). Every decision (the
plateau schedule, the better fixed S, the ensemble's pair) is taken on a validation split held out from the training
images; the test images are read once, by the last evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..base.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, RUNTIME, progress_setting, validate
from ..base.settings import setting as s
from ..data.dataset import DATASETS
from .geometry import Geometry

LETTERS = ("A", "A-LRN", "B", "C", "D", "E")
NAMES = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_conv1", "D": "vgg16", "E": "vgg19"}
KINDS = ("256", "384", "jitter")  # the paper's training scales: S = 256, S = 384, S in [256, 512]
DEEP = ("B", "C", "D", "E")  # the nets the paper's procedure starts from net A's layers
TABLE5 = ("D", "E")  # the nets the paper evaluated with multi-crop (Table 5)

# What ``--paper`` sets: the paper's runs exactly (Sect. 3.1, 4): full size, its initialisation, batch and length.
PAPER = {
    "crop": 224,
    "width": 1.0,
    "fc_width": 4096,
    "epochs": 74,
    "finetune_epochs": 74,
    "init": "normal",
    "batch_size": 256,
    "scale_nets": ["C", "D", "E"],
    "scale_dataset": "same",
    "patience": 2,
    "decays": 3,
    "scratch_nets": [],
}


@dataclass
class Settings:
    """What a reproduction runs: its data, size and procedure (defaults: Fashion-MNIST on a 2-core CPU). Each
    setting says its flag's help and range (:func:`vggnet.base.settings.setting`); the ``result`` ones define a folder's
    runs, and continuing a folder with other values of them is refused."""

    dataset: str | None = s(
        None, "data of the nets' findings (default: from --data, else fashion-mnist)", choices=DATASETS
    )
    data: str | None = s(None, "an image folder (DIR/train, DIR/val) or Fashion-MNIST's idx files (default: Debian's)")
    scale_dataset: str = s(
        "auto",
        "data of the scale findings (Table 3's jittering, Table 4): auto is fashion-mnist-scaled for Fashion-MNIST "
        "(garments at many sizes and places) and the same data otherwise",
        choices=("auto", "same", *DATASETS),
    )
    crop: int = s(28, "training crop, the paper's 224", AT_LEAST_ONE)
    width: float = s(0.125, "width multiplier", POSITIVE)
    fc_width: int | None = s(None, "width of fc6 and fc7 (default 4096 x width)", AT_LEAST_ONE)
    epochs: int = s(
        50,
        "epoch budget of a first stage: the rate is divided by 10 at each plateau of the validation error, the run "
        "ends at the plateau after the last division or at the budget",
        AT_LEAST_ONE,
    )
    first_rate_cap: int | None = s(
        40,
        "epochs a first stage's first rate may last: where the plateau rule has not divided it by then, it is "
        "divided, and the run goes on at a tenth within its budget (the report names such runs)",
        AT_LEAST_ONE,
    )
    warmup_epochs: float = s(
        1.0, "epochs of linear warm-up from a tenth of the rate, for the runs that start at the full rate", NON_NEGATIVE
    )
    hold_at_chance: bool = s(
        True,
        "the plateau rule does not count an epoch whose validation error is at chance: the rate of a run that has "
        "not left chance is never cut",
    )
    finetune_epochs: int | None = s(
        None, "epoch budget of the large-S and jittered stages (default half)", AT_LEAST_ONE
    )
    final_epochs: int = s(
        3,
        "epochs at a tenth of the rate that end a run whose plateau rule has not fired by then (every run ends after "
        "at least one division, as the paper's did)",
        NON_NEGATIVE,
    )
    decays: int = s(2, "divisions of the rate before a run ends at its next plateau (the paper's 3)", NON_NEGATIVE)
    seeds: int = s(10, "seeds of the nets (more can be added to a folder later)", AT_LEAST_ONE, role=RUNTIME)
    scale_seeds: int | None = s(
        None,
        "seeds of the training-scale stages (default: --seeds; 0 leaves them out; the scale findings and the "
        "ensemble need 3 for a verdict, and at their spreads 5 or more)",
        NON_NEGATIVE,
        role=RUNTIME,
    )
    nets: list[str] = s(
        list(LETTERS), "the nets of Table 1 to train (all six by default)", choices=LETTERS, role=RUNTIME
    )
    # The paper pre-initialised its deeper nets from net A because they stalled from random weights (Sect. 3.1): the
    # no-BN plan trains these nets from scratch too, so that how often each start stalls is measured.
    scratch_nets: list[str] = s(
        ["D", "E"],
        "nets also trained from random weights without BN, to measure how often they stall (with BN every net is)",
        choices=DEEP,
        role=RUNTIME,
    )
    stall_test: bool = s(
        True,
        "without BN, the paper's statements on stalls, with equal budgets (--stall-epochs) and the rate held while "
        "at chance: the --scratch-nets from N(0, 0.01), from net A's layers with the rest at N(0, 0.01), and from "
        "Glorot's initialisation; net A from N(0, 0.01) as a control",
    )
    stall_epochs: int = s(30, "epoch budget of every run of the stall test", AT_LEAST_ONE)
    batch_norm: bool = s(False, "BN nets, each from scratch (their own tables)")
    # The paper's N(0, 0.01) leaves a narrow net's output ~1e-9 of its input (each layer scales the signal by about
    # 0.01 * sqrt(fan-in / 2), under 0.2 at 1/8 width): it never leaves chance. Glorot's, which the paper names as
    # the alternative that needs no pre-training, keeps the signal's scale at any width.
    init: str | None = s(
        None,
        "initialisation of net A (and of the nets from scratch): normal (the paper's, std 0.01), xavier (Glorot, "
        "which the authors later found trains without pre-training), kaiming or he (default: xavier, kaiming with "
        "--batch-norm)",
        choices=("normal", "xavier", "kaiming", "he"),
    )
    rest_init: str = s(
        "he",
        "initialisation of the layers B-E do not copy from net A: he (std sqrt(2 / fan-in): keeps the signal's scale "
        "through the random layers between A's), normal (the paper's), xavier, kaiming, or same (as --init)",
        choices=("he", "normal", "xavier", "kaiming", "same"),
    )
    lr: float = s(0.01, "learning rate from scratch", POSITIVE)
    finetune_lr: float = s(0.001, "rate of the large-S and jittered stages (the paper's)", POSITIVE)
    # The paper's 256 is 1/5000 of an ImageNet epoch; on 55,000 images 64 keeps ~860 steps an epoch.
    batch_size: int = s(64, "batch", AT_LEAST_ONE)
    patience: int = s(1, "epochs without improvement before the rate drops 10x", NON_NEGATIVE)

    val_split: int = s(
        5000, "training images held out for every decision (stratified, fixed by each seed)", AT_LEAST_ONE
    )
    scale_nets: list[str] = s(
        ["D", "E"], "nets trained at the three scales (the paper's C D E)", choices=("C", "D", "E")
    )
    subset: int | None = s(None, "train on a balanced subset of this many images", AT_LEAST_ONE)
    eval_limit: int | None = s(None, "evaluate on the first N validation and test images only", AT_LEAST_ONE)
    device: str = s("auto", "auto, cpu, cuda or cuda:N", role=RUNTIME)
    # float32: these narrow nets gain ~7 % from bf16 on a CPU, and float32's results do not depend on the CPU kind
    amp: str = s("off", "autocast (float32 by default)", choices=("auto", "bf16", "fp16", "off"), role=RUNTIME)
    progress: bool = progress_setting()
    out: str | None = s(
        None, "folder of the runs and the report (default runs/reproduce, runs/reproduce_bn)", role=RUNTIME
    )

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = "runs/reproduce_bn" if self.batch_norm else "runs/reproduce"

    def check(self) -> None:
        validate(self)
        for name in ("scale_nets", "nets", "scratch_nets"):
            chosen = getattr(self, name)
            if len(set(chosen)) != len(chosen):
                raise ValueError(f"{name.replace('_', '-')} lists a net twice: {' '.join(chosen)}")

    @property
    def head_width(self) -> int:
        return self.fc_width or max(8, round(4096 * self.width))

    @property
    def stage_epochs(self) -> int:
        return self.finetune_epochs or max(1, self.epochs // 2)

    @property
    def seeds_of_scales(self) -> int:
        return self.seeds if self.scale_seeds is None else self.scale_seeds

    @property
    def init_scheme(self) -> str:
        """The initialisation actually used: Glorot's without BN (see above), torchvision's Kaiming with BN."""
        return self.init or ("kaiming" if self.batch_norm else "xavier")

    @property
    def rest_scheme(self) -> str:
        """The initialisation of the layers B-E do not copy from net A."""
        return self.init_scheme if self.rest_init == "same" else self.rest_init

    @property
    def main_data(self) -> str:
        """The dataset of the nets' findings."""
        if self.dataset:
            return self.dataset
        return "folder" if self.data and (Path(self.data) / "train").is_dir() else "fashion-mnist"

    @property
    def scale_data(self) -> str:
        """The dataset of the scale findings: data with objects at many sizes."""
        if self.scale_dataset == "auto":
            return "fashion-mnist-scaled" if self.main_data == "fashion-mnist" else self.main_data
        return self.main_data if self.scale_dataset == "same" else self.scale_dataset

    @property
    def separate_scale_runs(self) -> bool:
        return self.scale_data != self.main_data


@dataclass(frozen=True)
class RunSpec:
    """One training run of the plan and how it is evaluated."""

    letter: str
    kind: str
    seed: int
    group: str  # "nets" (A-E at the small S, the main data) or "scales" (the three S, data with scale)
    scale: list[int]
    init: str  # "random", "preinit" (net A's layers) or "finetune" (every layer)
    init_from: str | None
    lr: float
    epochs: int
    q_single: int
    q_multi: list[int]
    multicrop: bool
    dataset: str
    # a run of the stall test (or, in plans made before it, a deep net from random weights): "scratch" (Glorot's,
    # or --init), "normal" (N(0, 0.01)), "preinit_normal" (net A's layers, the rest N(0, 0.01))
    arm: str = ""
    init_scheme: str | None = None  # the run's own initialisation, where it is not the plan's
    hold_at_chance: bool = False

    @property
    def model(self) -> str:
        """The model without its seed: ``D_384`` on the main data, ``D_384_scaled`` on the data with scale,
        ``D_256_scratch``, ``D_256_normal``, ``D_256_preinit_normal`` for the arms of the stall test."""
        return (
            f"{self.letter}_{self.kind}" + (f"_{self.arm}" if self.arm else "") + "_scaled" * (self.group == "scales")
        )

    @property
    def name(self) -> str:
        return f"{self.model}_seed{self.seed}"

    @property
    def qs(self) -> list[int]:
        """Every test scale the run is evaluated at: the single Q and the multi-scale ones."""
        return sorted({self.q_single, *self.q_multi})


def plan(settings: Settings) -> list[RunSpec]:
    """Every run of Tables 3-6 in an order where each run's initialisation is trained before it: the nets seed by
    seed, then the training scales seed by seed (a folder stopped early holds whole seeds of the nets)."""
    runs: list[RunSpec] = []
    for seed in range(settings.seeds):
        runs += _nets(settings, seed)
    for seed in range(settings.seeds_of_scales):
        runs += _scales(settings, seed)
    return runs


def _spec(
    settings: Settings, letter: str, kind: str, seed: int, group: str, start: tuple[str, str | None], arm: str = ""
) -> RunSpec:
    geo = Geometry(settings.crop)
    init, source = start
    first = kind == "256" or settings.batch_norm  # a first stage trains at the full rate for the full length
    stall = bool(arm) and settings.stall_test  # the stall test's runs: equal budgets, the rate held at chance
    return RunSpec(
        letter=letter,
        kind=kind,
        seed=seed,
        group=group,
        scale=geo.scale(kind),
        init=init,
        init_from=f"{source}_seed{seed}" if source else None,
        lr=settings.lr if first else settings.finetune_lr,
        epochs=settings.stall_epochs if stall else settings.epochs if first else settings.stage_epochs,
        q_single=geo.q_single(kind),
        q_multi=geo.q_multi(kind),
        multicrop=kind == "jitter" and letter in TABLE5,
        dataset=settings.scale_data if group == "scales" else settings.main_data,
        arm=arm,
        init_scheme="normal" if arm in ("normal", "preinit_normal") else None,
        hold_at_chance=settings.hold_at_chance or stall,
    )


def _nets(settings: Settings, seed: int) -> list[RunSpec]:
    """A, A-LRN from random weights; B-E from net A's layers (from scratch with BN); the small S. Without BN, the
    ``scratch_nets`` also from random weights (:func:`_stall_test`)."""
    random, chosen = ("random", None), [x for x in LETTERS if x in settings.nets]
    if not settings.batch_norm and "A" not in chosen and any(x in chosen for x in DEEP):
        chosen.insert(0, "A")  # B-E start from it
    runs = [_spec(settings, letter, "256", seed, "nets", random) for letter in chosen if letter in ("A", "A-LRN")]
    start = random if settings.batch_norm else ("preinit", "A_256")
    runs += [_spec(settings, letter, "256", seed, "nets", start) for letter in chosen if letter in DEEP]
    return runs + ([] if settings.batch_norm else _stall_test(settings, seed, chosen))


def _stall_test(settings: Settings, seed: int, chosen: list[str]) -> list[RunSpec]:
    """The paper's statements on stalls (Sect. 3.1 and its footnote), each an arm of the same budget: the deep
    nets from N(0, 0.01), from net A's layers with the rest at N(0, 0.01), and from Glorot's initialisation (the
    plan's --init); net A from N(0, 0.01) as a control (at a narrow width N(0, 0.01) may stall any net). Plans made
    before the stall test have only the last arm, at the nets' budget."""
    random, deep = ("random", None), [x for x in settings.scratch_nets if x in chosen]
    if not settings.stall_test or not deep:
        return [_spec(settings, letter, "256", seed, "nets", random, arm="scratch") for letter in deep]
    runs = [_spec(settings, "A", "256", seed, "nets", random, arm="normal")]
    for arm, start in (("normal", random), ("preinit_normal", ("preinit", "A_256")), ("scratch", random)):
        runs += [_spec(settings, letter, "256", seed, "nets", start, arm=arm) for letter in deep]
    return runs


def _scales(settings: Settings, seed: int) -> list[RunSpec]:
    """The scale nets at the small, large and jittered S: on their own data (with its own net A to start from) or
    continuing the nets' runs where the data is the same."""
    random, bn, separate = ("random", None), settings.batch_norm, settings.separate_scale_runs
    suffix = "_scaled" if separate else ""
    runs = []
    if separate:
        if not bn:
            runs.append(_spec(settings, "A", "256", seed, "scales", random))
        start = random if bn else ("preinit", "A_256_scaled")
        runs += [_spec(settings, letter, "256", seed, "scales", start) for letter in settings.scale_nets]
    for kind, before in (("384", "256"), ("jitter", "384")):
        for letter in settings.scale_nets:
            start = random if bn else ("finetune", f"{letter}_{before}{suffix}")
            runs.append(_spec(settings, letter, kind, seed, "scales" if separate else "nets", start))
    return runs


def train_config(spec: RunSpec, settings: Settings):
    """The :class:`~vggnet.training.TrainConfig` of one run."""
    from ..network.model import build
    from ..training.settings import TrainConfig

    arch = NAMES[spec.letter] + ("_bn" if settings.batch_norm else "")
    with torch.device("meta"):  # the head sees pool5's whole map at the crop, as fc6 sees 7 x 7 at 224
        pool = build(arch, width=settings.width, ceil_mode=True).map_size(settings.crop)
    out = Path(settings.out)
    start = str(out / spec.init_from / "model.safetensors") if spec.init_from else None
    return TrainConfig(
        arch=arch,
        width=settings.width,
        ceil_mode=True,
        pool_size=pool,
        fc_width=settings.head_width,
        dropout=0.5,
        init=spec.init_scheme or (settings.rest_scheme if spec.init == "preinit" else settings.init_scheme),
        preinit=start if spec.init == "preinit" else None,
        weights=start if spec.init == "finetune" else None,
        dataset=spec.dataset,
        data=settings.data,
        subset=settings.subset,
        val_split=settings.val_split,
        scale=spec.scale,
        crop=settings.crop,
        normalize="mean",
        epochs=spec.epochs,
        batch_size=settings.batch_size,
        lr=spec.lr,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="plateau",
        patience=settings.patience,
        max_decays=settings.decays,
        final_decay=min(final_stage(spec, settings), spec.epochs - 1),  # a one-epoch run has no final stage
        warmup_epochs=settings.warmup_epochs if spec.lr == settings.lr else 0.0,
        hold_at_chance=spec.hold_at_chance,
        out=str(out / spec.name),
        device=settings.device,
        seed=spec.seed,
        amp=settings.amp,
        progress=settings.progress,
        tensorboard=False,
    )


def final_stage(spec: RunSpec, settings: Settings) -> int:
    """The epochs at a tenth of the rate that end a run whose plateau rule has not divided its rate: the final
    stage, or what the budget leaves after the first rate's cap (the rule decides within the cap)."""
    cap = settings.first_rate_cap if spec.lr == settings.lr else None
    return max(settings.final_epochs, spec.epochs - cap) if cap else settings.final_epochs


def wanted(spec: RunSpec, settings: Settings, split: str, chosen: set[str] | None = None) -> dict[str, list[int]]:
    """The posteriors a run's report needs on a split (``val`` or ``test``), by protocol, each on the cheapest
    protocol that answers its question. Validation takes decisions that are not about protocols (the better fixed S,
    the ensemble's pair): the centre crop at the single Q. The test set: the centre crop at every Q; the dense net
    where the geometry lets it mean what it means in the paper; and multi-crop (5 x 5 crops x 2 flips) only where a
    finding is judged on it: on data with scale, where a centre crop cuts away objects off its centre, the jittered
    nets of Table 5 at every multi-scale Q and, at the single Q, the models ``chosen`` on validation (the better
    fixed S, the ensemble's pair; every scale net's model when ``chosen`` is None)."""
    if split == "val":
        return {"center": [spec.q_single]}
    found = {"center": spec.qs}
    if Geometry(settings.crop).dense_breaks(spec.qs) is None:
        found["dense"] = spec.qs
    elif judged_by(settings, spec.group) == "multicrop" and spec.letter in settings.scale_nets:
        crops = set(spec.q_multi) if spec.multicrop else set()
        if chosen is None or spec.model in chosen or spec.kind == "jitter":
            crops.add(spec.q_single)
        found["multicrop"] = sorted(crops)
    return {m: qs for m, qs in found.items() if qs}


def judged_by(settings: Settings, group: str) -> str:
    """The protocol family that judges a group's findings: the paper's dense net where it is testable; else, on data
    with scale, multi-crop (it sees the whole image; a centre crop at a large Q cuts away objects off its centre);
    else the centre crop (the training crop's geometry, on data whose objects sit in the centre)."""
    geo = Geometry(settings.crop)
    if geo.dense_breaks(geo.q_multi("jitter")) is None:
        return "dense"
    return "multicrop" if group == "scales" else "center"


def with_paper_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over the paper's settings (``--paper``): what is typed wins."""
    return {**PAPER, **values}
