"""Training VGG the paper's way (Sect. 3.1): SGD with momentum, weight decay, dropout, and the plateau schedule; and
fine-tuning from pretrained weights (new fc8, frozen layers, a lower rate for pretrained layers).

Read it top to bottom: :func:`train` sets a run up (:func:`start`), calls :func:`train_one_epoch` and
:func:`evaluate_split` once per epoch, and ends every way a run can end in one :class:`RunResult`. Runs resume
exactly: the data order and every augmentation are functions of (seed, epoch, position), and the checkpoint
(:class:`~vggnet.checkpoint.TrainState`) holds everything else that changes.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from ..base.configs import layer_kinds
from ..base.files import atomic_copy, atomic_write_text, folder_lock
from ..base.hardware import cpu_has_bf16
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, NAMED_NORMALIZATIONS, Normalization
from ..base.shape import OPTIONS, options_of
from ..data.dataset import Batch
from ..data.device import DeviceImageFolder, decodes_on_device
from ..data.folders import ImageFolder
from ..data.opening import OpenedData, open_datasets
from ..layers import input_scale_of, preinit_from
from ..model import VGG, build
from ..weights import (
    LoadReport,
    WeightsFile,
    decode_metadata,
    load_pretrained,
    load_weights,
    read_weights,
    rgb_input,
    save_weights,
)
from . import distributed as dist_utils
from .checkpoint import TrainState, load_checkpoint, unwrap
from .metrics import Progress, TensorBoard, plot_curves, write_csv
from .settings import TrainConfig, load_recipe  # noqa: F401  (load_recipe: part of this module's API)


@dataclass
class RunResult:
    """How a run ended, whichever way: ``finished`` (all epochs, or the plateau rule's last decrease), ``max_steps``
    (stopped and saved after ``--max-steps``), ``interrupted`` (SIGINT/SIGTERM; saved) or ``diverged`` (non-finite
    loss; the last good checkpoint kept). ``exit_code`` is the command line's exit status."""

    status: str
    exit_code: int
    message: str
    epoch: int
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_acc: float = -1.0
    weights_digest: str | None = None
    checkpoint: str | None = None
    best: str | None = None
    weights: str | None = None
    metrics: str | None = None
    curves: str | None = None

    @property
    def val_top1_err(self) -> float | None:
        """The last validation's top-1 error (epochs between ``val_every`` validations have none)."""
        return next((h["val_top1_err"] for h in reversed(self.history) if "val_top1_err" in h), None)


@dataclass
class Run:
    """What a run works with besides its checkpointed state: settings, data, the (wrapped) network and the layout of
    its batches. Built once by :func:`start`."""

    cfg: TrainConfig
    ctx: dist_utils.Context
    data: OpenedData
    state: TrainState
    net: nn.Module  # the model, wrapped by DistributedDataParallel and/or torch.compile
    sampler: DistributedSampler
    micro: int  # images per forward pass on each process
    accumulate: int  # forward passes per optimizer step
    autocast: Callable[[], Any]
    memory_format: torch.memory_format
    board: TensorBoard
    plotted: float = float("-inf")  # when curves.png was last drawn

    @property
    def per_rank(self) -> int:
        return self.micro * self.accumulate

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.sampler.num_samples / self.per_rank)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


def train(cfg: TrainConfig, given: set[str] | None = None) -> RunResult:
    """Train a VGG as ``cfg`` says. With ``cfg.resume``, the settings come from the checkpoint; ``given`` names the
    settings the caller chose (default: those that differ from their defaults), and changing any that shape the run
    is an error."""
    cfg.check()
    ctx = dist_utils.setup(cfg.device)
    try:
        # one run per folder: a second one (or a second command) is refused while this one holds it
        with folder_lock(cfg.out, "run folder") if ctx.main else nullcontext():
            run = start(cfg, ctx, given)
            with StopRequest() as stop:
                for epoch in range(run.state.epoch, run.cfg.epochs):
                    outcome = train_one_epoch(run, epoch, stop)
                    if isinstance(outcome, RunResult):
                        return outcome
                    if end_epoch(run, epoch, outcome):
                        break
            return finish(run)
    finally:
        dist_utils.teardown()


# -- setting a run up -----------------------------------------------------------------------------------------------
def start(cfg: TrainConfig, ctx: dist_utils.Context, given: set[str] | None = None) -> Run:
    """Open the data, build (or restore) the model and optimizer, and say what the run is."""
    last = Path(cfg.out) / "last.pt"
    saved = load_checkpoint(last) if cfg.resume else None
    if saved is not None:
        cfg = cfg.resumed_from(saved["config"], given)
    elif ctx.main and last.exists():
        raise ValueError(f"{last} exists: pass --resume to continue that run, or choose another --out")
    device = ctx.device
    seed_and_tune(cfg.seed, device)
    named = cfg.normalize if cfg.normalize in NAMED_NORMALIZATIONS else None  # the input of weights that do not say
    weights = rgb_input(read_weights(cfg.weights, _arch_name(cfg.arch), named)) if cfg.weights and not saved else None
    folder = DeviceImageFolder if decodes_on_device(cfg.decode, device) else ImageFolder
    data = open_datasets(cfg, _normalization_of(weights), saved["stats"] if saved else None, folder)
    model, report = make_model(cfg, data, weights, saved, given)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    if ctx.distributed and model.batch_norm and device.type == "cuda":
        # SyncBatchNorm runs on GPUs only; on CPUs each rank normalises its own batch and DDP keeps the running
        # statistics equal by broadcasting rank 0's.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    micro, accumulate = split_batch(cfg, ctx.world)
    optimizer = make_optimizer(model, cfg, report, device)
    amp_dtype = autocast_mode(cfg.amp, device)
    state = TrainState(
        model,
        optimizer,
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=cfg.patience, threshold=1e-3
        ),
        torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        config=cfg.to_dict(),
        stats=data.stats,
        classes=list(data.train.classes),
        crop=data.crop,
    )
    if saved is not None:
        state.load_state_dict(saved)
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = Run(
        cfg=cfg,
        ctx=ctx,
        data=data,
        state=state,
        net=torch.compile(net) if cfg.compile else net,
        sampler=DistributedSampler(
            range(len(data.train)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
        ),
        micro=micro,
        accumulate=accumulate,
        autocast=(lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext,
        memory_format=memory_format,
        board=TensorBoard(Path(cfg.out) / "tensorboard", enabled=ctx.main and cfg.tensorboard),
    )
    announce(run, report, amp_dtype, resumed=saved is not None)
    return run


def seed_and_tune(seed: int, device: torch.device) -> None:
    """The run's seed; on CUDA, cuDNN's autotuner and TF32 matrix products (the speed every GPU run wants)."""
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _arch_name(arch: str | list) -> str | None:
    from ..base.configs import canonical_name, resolve

    try:
        return canonical_name(*resolve(arch)) if isinstance(arch, str) else None
    except ValueError:
        return None


def _normalization_of(weights: WeightsFile | None) -> Normalization | None:
    """The input normalisation that goes with pretrained weights: what the file records; for other files of three
    channels (torchvision's or timm's .pth files, in practice), ImageNet's."""
    if weights is None:
        return None
    if weights.normalization is not None:
        return weights.normalization
    if weights.state.get("features.0.weight", torch.empty(0, 0)).shape[1:2] == (3,):
        return Normalization(IMAGENET_MEAN, IMAGENET_STD, source=f"assumed ImageNet's for {weights.source}")
    return None


def make_model(
    cfg: TrainConfig,
    data: OpenedData,
    weights: WeightsFile | None = None,
    saved: dict[str, Any] | None = None,
    given: set[str] | None = None,
) -> tuple[VGG, LoadReport | None]:
    """The run's model for its data: restored from a checkpoint's shape (resume), shaped as the pretrained weights
    (a vggnet file records its shape) or as ``cfg`` says; pre-initialised from net A, loaded for fine-tuning and
    frozen as ``cfg`` says. Returns the model and what fine-tuning loaded."""
    shape = dict(num_classes=len(data.train.classes), in_channels=data.train.channels)
    units = input_scale_of(data.stats["std"])  # what one unit of the net's input is in pixel levels (LRN's scale)
    if saved is not None:
        model = VGG.from_config(decode_metadata(saved["meta"]), dropout=cfg.dropout).set_input_scale(units)
        model.freeze(cfg.freeze)
        return model, None
    if weights is not None and weights.config is not None:
        if weights.trunk_only:  # the head is new: shaped as the run says
            weights = replace(weights, config={**weights.config, "pool_size": cfg.pool_size, "fc_width": cfg.fc_width})
        _check_shape_matches(cfg, weights, given)
        model = VGG.from_config(weights.config, init=cfg.init, dropout=cfg.dropout, **shape)
    else:
        model = build(cfg.arch, init=cfg.init, dropout=cfg.dropout, **options_of(cfg), **shape)
    if cfg.preinit:  # the paper's pre-initialisation of deeper nets from a trained net A
        net_a = build("vgg11", **{**options_of(cfg), "batch_norm": model.batch_norm}, **shape)
        load_weights(net_a, cfg.preinit)
        preinit_from(model, net_a)
    report = load_pretrained(model, weights, list(data.train.classes)) if weights is not None else None
    model.set_input_scale(units).freeze(cfg.freeze)
    return model, report


def _check_shape_matches(cfg: TrainConfig, weights: WeightsFile, given: set[str] | None = None) -> None:
    """A vggnet weights file says what network it holds; shape settings that contradict it are an error rather than
    silently replaced. ``given``: the settings the user chose (a flag typed counts even when it equals the default);
    without it, those that differ from their defaults."""
    defaults = TrainConfig()
    shape = ("arch", *OPTIONS)
    if given is None:
        chosen = [k for k in shape if getattr(cfg, k) != getattr(defaults, k)]
    else:
        chosen = [k for k in shape if k in given]
    held = weights.config
    clashes = [
        k
        for k in OPTIONS
        if k != "width" and k in chosen and getattr(cfg, k) is not None and getattr(cfg, k) != held.get(k, False)
    ]
    arch = cfg.arch if "arch" in chosen else held.get("arch")
    if ("arch" in chosen or "width" in chosen) and arch is not None:
        width = cfg.width if "width" in chosen else 1.0
        with torch.device("meta"):
            wanted = build(arch, width=width, batch_norm=cfg.batch_norm).to_config()
        mine, theirs = wanted["config"], held["config"]
        if "width" not in chosen:  # the layer sequence, whatever the widths
            mine, theirs = layer_kinds(mine), layer_kinds(theirs)
        if json.dumps(mine) != json.dumps(theirs) or ("arch" in chosen and wanted["batch_norm"] != held["batch_norm"]):
            clashes += [k for k in ("arch", "width") if k in chosen]
    if clashes:
        raise ValueError(
            f"{weights.source} holds a {held.get('arch') or 'custom VGG'} (pool {held['pool_size']}, fc "
            f"{held['fc_width']}) that --{' --'.join(c.replace('_', '-') for c in clashes)} contradict; drop them "
            "(the weights give the network's shape) or use other weights"
        )


def split_batch(cfg: TrainConfig, world: int) -> tuple[int, int]:
    """The global batch split over processes, then into micro-batches whose gradients are accumulated."""
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} does not divide over {world} processes")
    per_rank = cfg.batch_size // world
    micro = min(cfg.micro_batch or per_rank, per_rank)
    if per_rank % micro:
        raise ValueError(f"micro-batch {micro} does not divide the per-process batch {per_rank}")
    return micro, per_rank // micro


def make_optimizer(
    model: VGG, cfg: TrainConfig, report: LoadReport | None, device: torch.device
) -> torch.optim.Optimizer:
    """SGD over the trainable parameters (frozen ones are left out); with pretrained weights, their layers learn at
    ``pretrained_lr_scale`` times the rate of the new ones. Fused: one kernel for weight decay, momentum and the
    update (CPU and CUDA), about 7% of a VGG16 CPU step."""
    new_layers = {"fc8"} if report is not None and report.new else set()
    groups: dict[float, list[nn.Parameter]] = {}
    for name in model.layer_names:
        scale = cfg.pretrained_lr_scale if report is not None and name not in new_layers else 1.0
        params = [p for p in model.layer(name).parameters(recurse=False) if p.requires_grad]
        groups.setdefault(scale, []).extend(params)
    param_groups = [{"params": ps, "lr": cfg.lr * s, "lr_scale": s} for s, ps in groups.items() if ps]
    return torch.optim.SGD(
        param_groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )


def autocast_mode(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device; use bf16 on the CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def announce(run: Run, report: LoadReport | None, amp_dtype: torch.dtype | None, resumed: bool) -> None:
    if not run.ctx.main:
        return
    cfg, model, data = run.cfg, unwrap(run.net), run.data
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "data_stats.json", json.dumps(data.stats, indent=1))
    atomic_write_text(run.out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"training {model.describe()} ({params:,} parameters"
        + (f", {trainable:,} trainable" if trainable < params else "")
        + f") on {data.train.name}: {len(data.train):,} images, {len(data.train.classes)} classes; validation "
        f"{len(data.val):,} images; device {run.ctx.device}"
        + (f" x {run.ctx.world} processes" if run.ctx.distributed else "")
        + f", amp {amp_dtype or 'off'}, batch {cfg.batch_size} ({run.micro} x {run.accumulate} per process)"
    )
    norm = data.stats.get("normalization", "the training set")
    print(f"normalisation: mean {_rounded(data.stats['mean'])}, std {_rounded(data.stats['std'])} (from {norm})")
    if report is not None:
        print(report)
        if cfg.pretrained_lr_scale != 1:
            print(f"pretrained layers learn at {cfg.pretrained_lr_scale:g} x the rate of new ones")
    if model.frozen:
        print(f"frozen: {model.frozen[0]} ... {model.frozen[-1]} ({len(model.frozen)} layers)")
    if resumed:
        print(f"resuming {run.out / 'last.pt'} at epoch {run.state.epoch + 1}, step {run.state.step}")


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


# -- one epoch ------------------------------------------------------------------------------------------------------
class StopRequest:
    """SIGINT/SIGTERM ask the run to finish its step, save and exit; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\nreceived {signal.Signals(signum).name}: finishing this step, then saving", file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclass
class Totals:
    """Running sums over an epoch, kept on the device so that the loop does not wait for it."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    skipped: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def on(cls, device: torch.device) -> Totals:
        return cls(
            torch.zeros((), device=device, dtype=torch.float64), torch.zeros((), device=device, dtype=torch.int64)
        )


def train_one_epoch(run: Run, epoch: int, stop: StopRequest) -> Totals | RunResult:
    """Train from the state's position to the end of ``epoch``; the epoch's running sums when it ran to its end,
    else the result of the run stopping early (interrupted, out of steps, diverged)."""
    cfg, state = run.cfg, run.state
    run.net.train()
    run.sampler.set_epoch(epoch)
    order = list(run.sampler)
    batches = run.data.train.batches(
        order, run.micro, epoch=epoch, device=run.ctx.device, start=state.step * run.accumulate
    )
    totals = Totals.on(run.ctx.device)
    progress = Progress(
        run.steps_per_epoch, state.step, f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every, enabled=cfg.progress
    )
    left = len(order) - state.step * run.per_rank
    # Reading a number off the GPU waits for it; so on CUDA the loss is checked every few steps, not every step.
    check_every = 1 if run.ctx.device.type == "cpu" else 20
    try:
        while left > 0:
            images = min(run.per_rank, left)
            left -= images
            set_learning_rate(run)
            train_step(run, batches, images, totals)
            state.step += 1
            state.global_step += 1
            out_of_steps = cfg.max_steps is not None and state.global_step >= cfg.max_steps
            saving = bool(cfg.save_every) and state.global_step % cfg.save_every == 0
            # Every rank must reach the same collectives: check only at points all ranks agree on.
            if state.step % check_every and left > 0 and not (out_of_steps or saving):
                continue
            early = check_between_steps(run, totals, progress, stop, out_of_steps and left > 0)
            if early is not None:
                return early
            if saving:
                save(run, run.out / "last.pt")
    finally:
        progress.close()
    return totals


def train_step(run: Run, batches: Iterator[Batch], images: int, totals: Totals) -> None:
    """One optimizer step over ``images`` images, in micro-batches whose gradients accumulate."""
    for m in range(run.accumulate):
        try:
            x, y, bad = next(batches)
        except StopIteration:
            break
        totals.skipped += _bad_files(bad, run.cfg.strict)
        if len(y) == 0:
            continue
        x = x.contiguous(memory_format=run.memory_format)
        sync = m == run.accumulate - 1 or not run.ctx.distributed
        with nullcontext() if sync else run.net.no_sync(), run.autocast():
            logits = run.net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=run.cfg.label_smoothing)
        run.state.scaler.scale(loss * (len(y) / images)).backward()
        totals.loss += loss.detach() * len(y)
        totals.correct += (logits.argmax(1) == y).sum()
        totals.seen += len(y)
    run.state.scaler.step(run.state.optimizer)
    run.state.scaler.update()
    run.state.optimizer.zero_grad(set_to_none=True)


def set_learning_rate(run: Run) -> None:
    """The one-cycle schedule's rate for this step (linear warm-up, linear decay to zero), times each parameter
    group's scale; the plateau rule instead changes rates at the end of an epoch."""
    cfg = run.cfg
    if cfg.schedule != "onecycle":
        return
    step, total = run.state.global_step, run.steps_per_epoch * cfg.epochs
    warm = cfg.warmup_epochs * run.steps_per_epoch
    if step < warm:
        lr = cfg.lr * (0.1 + 0.9 * step / warm)
    else:
        lr = cfg.lr * max(0.0, (total - step) / max(1.0, total - warm))
    for group in run.state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def check_between_steps(
    run: Run, totals: Totals, progress: Progress, stop: StopRequest, out_of_steps: bool
) -> RunResult | None:
    """Check the run between steps: a non-finite loss ends it, a stop request or the step limit saves and ends it."""
    state = run.state
    # A NaN or infinity stays in the running sum, so one look catches any step since the last.
    running_loss = totals.loss.item() / max(totals.seen, 1)
    diverged, stop_now = dist_utils.reduce_any([not math.isfinite(running_loss), stop.signal is not None], run.ctx)
    last = run.out / "last.pt"
    if diverged:
        kept = last if last.exists() else "none (no epoch finished yet)"
        return ended(
            run,
            "diverged",
            3,
            f"loss is {running_loss} at epoch {state.epoch + 1}, step {state.step}: training "
            f"diverged (lower --lr?). The last good checkpoint is {kept}",
        )
    rate = totals.seen * run.ctx.world / (time.perf_counter() - totals.started)
    lr = state.optimizer.param_groups[-1]["lr"]
    progress.update(state.step, f"{rate:.0f} img/s, loss {running_loss:.4f}, lr {lr:.2g}")
    if not (stop_now or out_of_steps):
        return None
    save(run, last)
    if stop_now:
        sig = stop.signal or signal.SIGTERM
        return ended(
            run,
            "interrupted",
            128 + sig,
            f"interrupted at epoch {state.epoch + 1}, step {state.step}; saved {last}. "
            f"Resume with:\n  vggnet train --out {run.cfg.out} --resume",
        )
    return ended(run, "max_steps", 0, f"stopped after {state.global_step} steps (--max-steps); saved {last}")


def ended(run: Run, status: str, code: int, message: str) -> RunResult:
    last = run.out / "last.pt"
    return RunResult(
        status,
        code,
        message,
        run.state.epoch,
        run.state.step,
        history=run.state.history,
        best_val_acc=run.state.best_acc,
        checkpoint=str(last) if last.exists() else None,
    )


def save(run: Run, path: Path) -> None:
    if run.ctx.main:
        run.state.save(path)


def _bad_files(bad: list[str], strict: bool) -> list[str]:
    for item in bad:
        if strict:
            raise ValueError(f"bad image {item} (--strict)")
        print(f"warning: skipped bad image {item}", file=sys.stderr)
    return bad


# -- the end of an epoch, and of the run ----------------------------------------------------------------------------
def end_epoch(run: Run, epoch: int, totals: Totals) -> bool:
    """Validate (every ``val_every`` epochs and after the last), record, apply the plateau rule, checkpoint; True
    when the run is finished."""
    cfg, state = run.cfg, run.state
    seconds = time.perf_counter() - totals.started
    loss, correct, seen = dist_utils.reduce_sum([totals.loss.item(), totals.correct.item(), totals.seen], run.ctx)
    finished = epoch + 1 == cfg.epochs or (cfg.max_steps is not None and state.global_step >= cfg.max_steps)
    row = {
        "epoch": epoch + 1,
        "step": state.global_step,
        "lr": state.optimizer.param_groups[-1]["lr"],
        "train_loss": loss / max(seen, 1),
        "train_top1_err": 1 - correct / max(seen, 1),
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }
    improved = False
    if finished or (epoch + 1) % cfg.val_every == 0:
        # Inference holds no activations for backward: twice the training micro-batch fits.
        val = evaluate_split(
            run.net, run.data.val, 2 * run.micro, run.ctx, run.memory_format, run.autocast, cfg.val_flip
        )
        row.update(val_loss=val["loss"], val_top1_err=1 - val["top1"], val_top5_err=1 - val["top5"])
        improved = val["top1"] > state.best_acc
        state.best_acc = max(state.best_acc, val["top1"])
        if cfg.schedule == "plateau":  # check() keeps val_every at 1 for it
            before = state.optimizer.param_groups[-1]["lr"]
            state.plateau.step(val["top1"])
            if state.decays == 0 and cfg.final_decay and epoch + 1 == cfg.epochs - cfg.final_decay:
                force_decay(state)  # the run's budget ends before the plateau rule fired: finish at a tenth
            if state.optimizer.param_groups[-1]["lr"] < before:
                state.decays += 1
                finished |= state.decays > cfg.max_decays  # the paper stopped after its third decrease
    state.history.append(row)
    state.epoch, state.step = epoch + 1, 0
    save(run, run.out / "last.pt")
    if run.ctx.main:
        report_epoch(run, row, improved, len(totals.skipped), finished)
    return finished


def force_decay(state: TrainState) -> None:
    """Divide every rate by 10 as the plateau rule would, and restart its count of epochs without improvement."""
    for group in state.optimizer.param_groups:
        group["lr"] *= 0.1
    state.plateau.num_bad_epochs = 0
    state.plateau._last_lr = [group["lr"] for group in state.optimizer.param_groups]


def report_epoch(run: Run, row: dict[str, float], improved: bool, skipped: int, finished: bool) -> None:
    out = run.out
    if improved:
        atomic_copy(out / "last.pt", out / "best.pt")
    write_csv(run.state.history, out / "metrics.csv")
    # Drawing takes ~0.4 s: at most every 30 s of a run of short epochs, and always at its end.
    if finished or time.monotonic() - run.plotted >= 30:
        plot_curves(run.state.history, out / "curves.png")
        run.plotted = time.monotonic()
    run.board.scalars({k: v for k, v in row.items() if k not in ("epoch", "step")}, int(row["epoch"]))
    note = f", {skipped} bad files skipped" if skipped else ""
    val = (
        f"val loss {row['val_loss']:.4f}, top-1 err {100 * row['val_top1_err']:.2f}%, "
        f"top-5 err {100 * row['val_top5_err']:.2f}%"
        if "val_loss" in row
        else f"not validated (every {run.cfg.val_every} epochs)"
    )
    print(
        f"epoch {int(row['epoch'])}/{run.cfg.epochs}: train loss {row['train_loss']:.4f}, "
        f"top-1 err {100 * row['train_top1_err']:.2f}% | {val} | "
        f"lr {row['lr']:.3g}, {row['images_per_s']:.0f} img/s, {row['seconds']:.1f}s{note}",
        flush=True,
    )


def finish(run: Run) -> RunResult:
    """Check that every process holds the same weights, write the final weights and say where everything is."""
    run.board.close()
    model, state, out = unwrap(run.net), run.state, run.out
    same, digest = dist_utils.same_weights_everywhere(model, run.ctx)
    if not same:
        return ended(run, "diverged", 4, "ranks ended with different weights")
    result = ended(run, "finished", 0, "")
    result.weights_digest = digest
    if not run.ctx.main:
        return result
    final = save_weights(
        model,
        out / "model.safetensors",
        metadata={
            "classes": json.dumps(state.classes),
            "crop": json.dumps(state.crop),
            "mean": json.dumps(state.stats["mean"]),
            "std": json.dumps(state.stats["std"]),
            "scale": json.dumps(state.stats.get("scale")),
            "pad": json.dumps(state.stats.get("pad", 0)),
        },
    )
    result.best, result.weights = str(out / "best.pt"), str(final)
    result.metrics, result.curves = str(out / "metrics.csv"), str(out / "curves.png")
    if run.ctx.distributed:
        print(f"weights identical on all {run.ctx.world} ranks (sha256 {digest[:16]})")
    result.message = (
        f"done: top-1 accuracy on {run.data.val.name}: {100 * (1 - result.val_top1_err):.2f}% at the end, "
        f"{100 * state.best_acc:.2f}% at best\n"
        f"  checkpoint  {result.checkpoint} (best: {result.best})\n  weights     {final}\n"
        f"  metrics     {result.metrics}\n  curves      {result.curves}\n  tensorboard {out / 'tensorboard'}"
    )
    print(result.message)
    return result


@torch.inference_mode()
def evaluate_split(
    net: nn.Module,
    dataset: Any,
    batch_size: int,
    ctx: dist_utils.Context,
    memory_format: torch.memory_format = torch.channels_last,
    autocast: Callable[[], Any] = nullcontext,
    flip: bool = False,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of a validation set, each rank taking every world-th image; with ``flip``, of
    the soft-max posteriors of each image and its mirror averaged."""
    net.eval()
    indices = list(range(ctx.rank, len(dataset), ctx.world))
    loss, top1, top5, n = 0.0, 0.0, 0.0, 0
    for x, y, _ in dataset.batches(indices, batch_size, epoch=0, device=ctx.device):
        if len(y) == 0:
            continue
        x = x.contiguous(memory_format=memory_format)
        with autocast():
            logits = F.log_softmax(net(x).float(), 1)
            if flip:  # the log of the mean of the two posteriors, computed stably
                mirrored = F.log_softmax(net(x.flip(3)).float(), 1)
                logits = torch.logaddexp(logits, mirrored) - math.log(2)
        loss += F.nll_loss(logits, y, reduction="sum").item()
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
        top1, top5, n = top1 + hit[:, 0].sum().item(), top5 + hit.any(1).sum().item(), n + len(y)
    loss, top1, top5, n = dist_utils.reduce_sum([loss, top1, top5, n], ctx)
    return {"loss": loss / max(n, 1), "top1": top1 / max(n, 1), "top5": top5 / max(n, 1)}
