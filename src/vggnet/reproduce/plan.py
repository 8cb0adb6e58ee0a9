"""The paper's experiments (Sect. 4, Tables 3-6) as one command: plan the runs, train and evaluate each in its own
folder (skipping finished ones, resuming an interrupted one), then report (:mod:`vggnet.reproduce_report`).

The procedure is the paper's: net A from random initialisation; B, C, D and E initialised from the trained A (its
first four convolutions and three FC layers, :func:`vggnet.model.preinit_from`), the rest random; the nets at the
large S initialised from the same net at the small S with a learning rate of 1e-3, and the jittered-S nets
fine-tuned from the large-S ones; SGD with momentum 0.9, weight decay 5e-4, dropout 0.5, the rate divided by 10 on
a validation plateau; no batch normalisation. ``batch_norm=True`` runs the same plan with BN nets, each from scratch
(today's practice). Scales keep the paper's ratios to the crop, so a 28-pixel crop is the paper's geometry in
miniature (S = 32 for 256, 48 for 384, [32, 64] for [256, 512]); pools round up as the authors' Caffe did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_text, save_safetensors

LETTERS = ("A", "A-LRN", "B", "C", "D", "E")
NAMES = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_conv1", "D": "vgg16", "E": "vgg19"}
KINDS = ("256", "384", "jitter")  # the paper's training scales: S = 256, S = 384, S in [256, 512]
TABLE5 = ("D", "E")  # the nets the paper evaluated with multi-crop (Table 5)
# Settings that change what a reproduction computes; a folder holds the runs of one set of them.
RESULT_SETTINGS = ("dataset", "data", "crop", "width", "fc_width", "epochs", "finetune_epochs", "batch_norm", "init",
                   "lr", "finetune_lr", "batch_size", "patience", "subset", "eval_limit")  # fmt: skip


@dataclass
class Settings:
    """What a reproduction runs: its data, size and procedure (defaults: Fashion-MNIST on a 2-core CPU)."""

    dataset: str | None = None
    data: str | None = None
    crop: int = 28
    width: float = 0.125
    fc_width: int | None = None  # default: 4096 x width, the paper's head scaled as the trunk is
    epochs: int = 6
    finetune_epochs: int | None = None  # the large-S and jittered-S stages; default: half of epochs
    seeds: int = 2
    batch_norm: bool = False
    # The paper's N(0, 0.01) leaves a narrow net's output ~1e-9 of its input (each layer scales the signal by about
    # 0.01 * sqrt(fan-in / 2), under 0.2 at 1/8 width): it never leaves chance. Glorot's, which the paper names as
    # the alternative that needs no pre-training, keeps the signal's scale at any width.
    init: str = "xavier"
    lr: float = 0.01
    finetune_lr: float = 0.001
    # The paper's 256 is 1/5000 of an ImageNet epoch; on 60,000 images 64 keeps ~940 steps an epoch.
    batch_size: int = 64
    patience: int = 1
    subset: int | None = None
    eval_limit: int | None = None
    device: str = "auto"
    amp: str = "auto"
    progress: bool = True
    out: str = "runs/reproduce"

    def check(self) -> None:
        if self.crop < 1 or self.epochs < 1 or self.seeds < 1 or self.batch_size < 1:
            raise ValueError("--crop, --epochs, --seeds and --batch-size must be positive")
        if not self.width > 0 or not self.lr > 0 or not self.finetune_lr > 0:
            raise ValueError("--width, --lr and --finetune-lr must be positive")
        for name in ("fc_width", "finetune_epochs", "subset", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")

    @property
    def head_width(self) -> int:
        return self.fc_width or max(8, round(4096 * self.width))

    @property
    def stage_epochs(self) -> int:
        return self.finetune_epochs or max(1, self.epochs // 2)


@dataclass(frozen=True)
class Geometry:
    """The paper's scales at another crop size, by the same ratios: S = 256/224 and 384/224 of the crop, jittered
    between 256/224 and 512/224 of it; test scales Q likewise (Sect. 3.2)."""

    crop: int

    def px(self, paper: int) -> int:
        """The miniature's size for a paper size (224 -> the crop)."""
        return max(1, round(paper * self.crop / 224))

    def scale(self, kind: str) -> list[int]:
        return {"256": [self.px(256)], "384": [self.px(384)], "jitter": [self.px(256), self.px(512)]}[kind]

    def q_single(self, kind: str) -> int:
        """Q = S for fixed S, (Smin + Smax) / 2 for jittered S."""
        s = self.scale(kind)
        return (s[0] + s[-1]) // 2

    def q_multi(self, kind: str) -> list[int]:
        """Q in {S - 32, S, S + 32} for fixed S, {Smin, (Smin + Smax) / 2, Smax} for jittered S, miniaturised."""
        if kind == "jitter":
            lo, hi = self.scale(kind)
            return [lo, (lo + hi) // 2, hi]
        s, d = self.scale(kind)[0], self.px(32)
        return [s - d, s, s + d]

    def paper(self, size: int) -> str:
        """A miniature size as the paper's (28 of a 28 crop -> "224")."""
        value = size * 224 / self.crop
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


@dataclass
class RunSpec:
    """One training run of the plan and how it is evaluated."""

    name: str
    letter: str
    kind: str
    seed: int
    scale: list[int]
    init: str  # "random", "preinit" (net A's layers) or "finetune" (every layer)
    init_from: str | None
    lr: float
    epochs: int
    q_single: int
    q_multi: list[int]
    multicrop: bool

    @property
    def label(self) -> str:
        """``D/S=256`` in the paper's units."""
        return f"{self.letter}/" + ("S=[256,512]" if self.kind == "jitter" else f"S={self.kind}")

    @property
    def model(self) -> str:
        """The model without its seed, e.g. ``D_384``."""
        return f"{self.letter}_{self.kind}"


def plan(settings: Settings) -> list[RunSpec]:
    """Every run of Tables 3-6, in an order where each run's initialisation is trained before it."""
    geo = Geometry(settings.crop)
    runs: list[RunSpec] = []
    bn = settings.batch_norm
    for seed in range(settings.seeds):

        def add(letter: str, kind: str, init: str, source: str | None, lr: float, epochs: int, seed=seed) -> None:
            runs.append(
                RunSpec(
                    f"{letter}_{kind}_seed{seed}", letter, kind, seed, geo.scale(kind), init,
                    f"{source}_seed{seed}" if source else None, lr, epochs, geo.q_single(kind), geo.q_multi(kind),
                    kind == "jitter" and letter in TABLE5,
                )
            )  # fmt: skip

        full, stage = settings.epochs, settings.stage_epochs
        for letter in ("A", "A-LRN"):
            add(letter, "256", "random", None, settings.lr, full)
        for letter in ("B", "C", "D", "E"):
            add(letter, "256", *(("random", None) if bn else ("preinit", "A_256")), settings.lr, full)
        for letter in ("C", "D", "E"):
            if bn:
                add(letter, "384", "random", None, settings.lr, full)
            else:
                add(letter, "384", "finetune", f"{letter}_256", settings.finetune_lr, stage)
        for letter in ("C", "D", "E"):
            if bn:
                add(letter, "jitter", "random", None, settings.lr, full)
            else:
                add(letter, "jitter", "finetune", f"{letter}_384", settings.finetune_lr, stage)
    return runs


def train_config(spec: RunSpec, settings: Settings):
    """The :class:`~vggnet.recipe.TrainConfig` of one run."""
    from ..model import build
    from ..training.settings import TrainConfig

    arch = NAMES[spec.letter] + ("_bn" if settings.batch_norm else "")
    with torch.device("meta"):  # the head sees pool5's whole map at the crop, as fc6 sees 7 x 7 at 224
        pool = build(arch, width=settings.width, ceil_mode=True).map_size(settings.crop)
    folder = Path(settings.out) / spec.name
    start = str(Path(settings.out) / spec.init_from / "model.safetensors") if spec.init_from else None
    return TrainConfig(
        arch=arch, width=settings.width, ceil_mode=True, pool_size=pool, fc_width=settings.head_width,
        dropout=0.5, init="kaiming" if settings.batch_norm else settings.init,
        preinit=start if spec.init == "preinit" else None, weights=start if spec.init == "finetune" else None,
        dataset=settings.dataset, data=settings.data, subset=settings.subset, scale=spec.scale,
        crop=settings.crop, normalize="mean", epochs=spec.epochs, batch_size=settings.batch_size, lr=spec.lr,
        momentum=0.9, weight_decay=5e-4, schedule="plateau", patience=settings.patience, max_decays=3,
        out=str(folder), device=settings.device, seed=spec.seed, amp=settings.amp, progress=settings.progress,
        tensorboard=False,
    )  # fmt: skip


# -- running ----------------------------------------------------------------------------------------------------------
def wanted(spec: RunSpec) -> dict[str, list[int]]:
    """The posteriors a run's report needs, by protocol: the dense net (the paper's) and the centre crop at every Q,
    and multi-crop at the multi-scale Qs for the nets of Table 5."""
    scales = sorted({spec.q_single, *spec.q_multi})
    found = {"dense": scales, "center": scales}
    if spec.multicrop:
        found["multicrop"] = list(spec.q_multi)
    return found


def missing(spec: RunSpec, folder: Path) -> dict[str, list[int]]:
    """What :func:`wanted` lists that the run's posteriors file does not hold yet."""
    from safetensors import safe_open

    have: set[str] = set()
    if (folder / "posteriors.safetensors").is_file():
        with safe_open(str(folder / "posteriors.safetensors"), framework="pt") as f:
            have = set(f.keys())  # noqa: SIM118 (safe_open is not a dict)
    gaps = {m: [q for q in qs if f"{m}@{q}" not in have] for m, qs in wanted(spec).items()}
    return {m: qs for m, qs in gaps.items() if qs}


def state_of(folder: Path, spec: RunSpec | None = None) -> str:
    """``evaluated``, ``trained`` (weights, posteriors missing or incomplete), ``failed``, ``interrupted`` (a checkpoint
    to resume) or ``new``."""
    if (folder / "posteriors.safetensors").is_file() and (spec is None or not missing(spec, folder)):
        return "evaluated"
    if (folder / "failed.json").is_file():
        return "failed"
    if (folder / "model.safetensors").is_file():
        return "trained"
    return "interrupted" if (folder / "last.pt").is_file() else "new"


def check_folder(settings: Settings) -> None:
    """A folder holds one reproduction: continuing it with other settings would mix results, so it is refused."""
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    mine = {k: getattr(settings, k) for k in RESULT_SETTINGS}
    saved_path = out / "reproduce_settings.json"
    if saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        changed = [f"--{k.replace('_', '-')} {mine[k]!r} (the folder's runs have {saved.get(k)!r})"
                   for k in RESULT_SETTINGS if saved.get(k) != mine[k]]  # fmt: skip
        if changed:
            raise ValueError(
                f"{out} holds a reproduction with other settings: " + "; ".join(changed) + ". Use the same settings "
                "to continue it, or another --out"
            )
    else:
        atomic_write_text(saved_path, json.dumps(mine, indent=1))


def execute(settings: Settings, runs: list[RunSpec] | None = None, log=print) -> dict[str, str]:
    """Train and evaluate every run not yet done; returns each run's final state. A run whose initialisation failed
    is not started; an interrupted run stops the reproduction (run the command again to resume it)."""
    from ..training.loop import train

    settings.check()
    runs = plan(settings) if runs is None else runs
    check_folder(settings)
    states: dict[str, str] = {}
    for i, spec in enumerate(runs, 1):
        folder = Path(settings.out) / spec.name
        state = state_of(folder, spec)
        if state in ("evaluated", "failed"):
            states[spec.name] = state
            log(f"[{i}/{len(runs)}] {spec.name}: {state}, skipped")
            continue
        if spec.init_from and states.get(spec.init_from) not in ("evaluated", "trained"):
            states[spec.name] = "blocked"
            log(f"[{i}/{len(runs)}] {spec.name}: not run, its initialisation {spec.init_from} did not train")
            continue
        if state in ("new", "interrupted"):
            log(f"[{i}/{len(runs)}] {spec.name}: {'resuming' if state == 'interrupted' else 'training'} {spec.label}"
                f" ({spec.init}{' from ' + spec.init_from if spec.init_from else ''}, lr {spec.lr:g})")  # fmt: skip
            cfg = replace(train_config(spec, settings), resume=state == "interrupted")
            result = train(cfg)
            if result.status == "interrupted":
                raise KeyboardInterrupt(f"{spec.name} interrupted; run the same command again to resume it")
            if result.status != "finished":
                atomic_write_text(folder / "failed.json", json.dumps({"status": result.status,
                                                                      "message": result.message}))  # fmt: skip
                states[spec.name] = "failed"
                log(f"[{i}/{len(runs)}] {spec.name}: {result.status}: {result.message}")
                continue
        todo = missing(spec, folder)
        log(f"[{i}/{len(runs)}] {spec.name}: evaluating " + "; ".join(f"{m} at Q = {qs}" for m, qs in todo.items()))
        evaluate_run(spec, settings)
        states[spec.name] = "evaluated"
    return states


def evaluate_run(spec: RunSpec, settings: Settings) -> Path:
    """Soft-max posteriors of the run's model on the test images, per protocol and Q, kept for the report (tables,
    ensembles) in ``posteriors.safetensors``."""
    from ..evaluate import collect
    from ..inference import load_model
    from ..training.distributed import pick_device

    folder = Path(settings.out) / spec.name
    loaded = load_model(folder / "model.safetensors")
    source = test_source(train_config(spec, settings), settings.eval_limit, loaded.model.in_channels)
    device = pick_device(settings.device)
    earlier = next(iter_evaluated(settings, [spec]), (None, {"tensors": {}, "meta": {}}))[1]
    tensors, timings = dict(earlier["tensors"]), dict(earlier["meta"].get("eval_seconds", {}))
    for method, scales in missing(spec, folder).items():  # only what an earlier evaluation lacks
        probs, seconds, labels = collect([loaded], source, scales, [method], loaded.crop, device)
        tensors.update({f"{m}@{q}": p.contiguous() for (_, m, q), p in probs.items()})
        timings.update({f"{m}@{q}": s for (_, m, q), s in seconds.items()})
        tensors["labels"] = labels.long().contiguous()
    history = _history(folder)
    meta = {
        "classes": json.dumps(source.classes),
        "eval_seconds": json.dumps(timings),
        "train_seconds": json.dumps(sum(h.get("seconds", 0.0) for h in history)),
        "epochs": json.dumps(len(history)),
        "data": source.name,
    }
    return save_safetensors(tensors, folder / "posteriors.safetensors", meta)


def test_source(cfg, limit: int | None, channels: int):
    """The held-out images of a run's data, as evaluation reads them: a folder's val/, or an in-memory set's
    validation images as originals."""
    from ..data.datasets import ImageFolder, InMemoryImages, memory_source, open_raw, open_source

    _, val = open_raw(cfg, ImageFolder)
    if isinstance(val, InMemoryImages):
        return memory_source(val, 256, limit, channels)
    return open_source(str(val.root), 256, False, limit, None, channels)


def _history(folder: Path) -> list[dict[str, Any]]:
    from ..training.checkpoint import load_checkpoint

    last = folder / "last.pt"
    return list(load_checkpoint(last).get("history", [])) if last.is_file() else []


# -- the plan, costed ---------------------------------------------------------------------------------------------
@dataclass
class Cost:
    train_images_per_s: dict[str, float] = field(default_factory=dict)
    images: int = 0
    test_images: int = 0


def measure_cost(settings: Settings) -> Cost:
    """Training images/s of each configuration at the plan's size, from a few timed steps (seconds, not a run), and
    the data's size: enough to cost the plan."""
    from ..data.datasets import ImageFolder, open_raw
    from ..model import build
    from ..training.distributed import pick_device

    device = pick_device(settings.device)
    cost = Cost()
    train_cfg = train_config(plan(replace(settings, seeds=1))[0], settings)
    train_set, _ = open_raw(train_cfg, ImageFolder)
    cost.images = len(train_set)
    cost.test_images = test_source(train_cfg, settings.eval_limit, train_set.channels).size
    for letter in LETTERS:
        model = build(NAMES[letter], batch_norm=settings.batch_norm, width=settings.width, ceil_mode=True,
                      in_channels=train_set.channels, num_classes=len(train_set.classes), pool_size=train_cfg.pool_size,
                      fc_width=settings.head_width).to(device)  # fmt: skip
        rate = _step_rate(model, settings.crop, train_set.channels, device, min(settings.batch_size, 256))
        cost.train_images_per_s[letter] = rate
    return cost


def _step_rate(model: torch.nn.Module, crop: int, channels: int, device: torch.device, batch: int = 64) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, channels, crop, crop, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.num_classes, (batch,), device=device)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return batch / min(times[1:])


def estimate_seconds(spec: RunSpec, cost: Cost) -> tuple[float, float]:
    """(training, evaluation) seconds of a run: its images over the measured training rate; evaluation as forward
    passes (a third of a training step): the dense net's mirror pair and the centre crop per Q, 50 crops per Q for
    multi-crop."""
    rate = cost.train_images_per_s[spec.letter]
    train_s = spec.epochs * (cost.images + cost.test_images / 3) / rate
    crops = sum(2 * (q / spec.q_single) ** 2 + 1 for q in {spec.q_single, *spec.q_multi})
    if spec.multicrop:
        crops += 50 * len(spec.q_multi)
    return train_s, cost.test_images * crops / (3 * rate)


def plan_table(settings: Settings, runs: list[RunSpec], cost: Cost | None = None) -> str:
    """The plan as a table: each run, where it starts from, its scales in the miniature and the paper's units."""
    geo = Geometry(settings.crop)
    lines = [
        f"{len(runs)} runs in {settings.out} ({settings.seeds} seed{'s' if settings.seeds > 1 else ''}); crop "
        f"{settings.crop} (the paper's 224), width x{settings.width:g}, fc {settings.head_width}, "
        f"{'BN, every net from scratch' if settings.batch_norm else 'no BN, the paper procedure'}",
        "",
        "| run | net | S (paper's) | starts from | lr | epochs | test Q (paper's) | protocols | est. min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for spec in runs:
        s = "-".join(map(str, spec.scale))
        paper_s = (
            "[" + ",".join(geo.paper(v) for v in spec.scale) + "]" if len(spec.scale) > 1 else geo.paper(spec.scale[0])
        )
        qs = ",".join(map(str, spec.q_multi))
        paper_q = ",".join(geo.paper(q) for q in spec.q_multi)
        start = {"random": "random", "preinit": f"net A's layers of {spec.init_from}",
                 "finetune": f"all of {spec.init_from}"}[spec.init]  # fmt: skip
        est = "-"
        if cost is not None:
            seconds = sum(estimate_seconds(spec, cost))
            total += seconds
            est = f"{seconds / 60:.1f}"
        protocols = ", ".join(wanted(spec))
        lines.append(f"| {spec.name} | {spec.letter} | {s} ({paper_s}) | {start} | {spec.lr:g} | {spec.epochs} | "
                     f"{qs} ({paper_q}) | {protocols} | {est} |")  # fmt: skip
    if cost is not None:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in cost.train_images_per_s.items())
        lines += ["", f"estimated total: {total / 60:.0f} min ({cost.images:,} training and {cost.test_images:,} test "
                  f"images; measured training images/s: {rates})"]  # fmt: skip
    return "\n".join(lines)


def iter_evaluated(settings: Settings, runs: list[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """Each evaluated run with its posteriors, labels and timings."""
    from safetensors import safe_open

    for spec in runs:
        path = Path(settings.out) / spec.name / "posteriors.safetensors"
        if not path.is_file():
            continue
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            meta = {k: json.loads(v) if k != "data" else v for k, v in (f.metadata() or {}).items()}
        yield spec, {"tensors": tensors, "meta": meta}
