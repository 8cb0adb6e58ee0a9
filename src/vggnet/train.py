"""Training VGG the paper's way (Sect. 3.1): SGD with momentum, weight decay, dropout, and the plateau schedule.

``train(TrainConfig(...))`` is the whole run; read it top to bottom. Runs resume exactly: the data order and every
augmentation are functions of (seed, epoch, position), and the checkpoint holds everything else that changes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from . import distributed as dist_utils
from .checkpoint import load_checkpoint, save_checkpoint
from .data import ImageFolder, InMemoryImages, load_fashion_mnist, synthetic
from .metrics import TensorBoard, plot_curves, write_csv
from .model import VGG, build, preinit_from
from .transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    paper_train_transform,
    rgb_eigen,
)
from .weights import load_weights, model_metadata, save_weights

SCHEDULES = ("plateau", "onecycle")
NORMALIZATIONS = ("mean", "meanstd", "imagenet")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the paper's (Sect. 3.1); recipes under ``recipes/`` override them."""

    # model
    arch: str = "vgg11"
    width: float = 1.0
    pool_size: int = 7
    fc_width: int = 4096
    dropout: float = 0.5
    init: str = "normal"
    preinit: str | None = None
    weights: str | None = None
    # data
    dataset: str | None = None
    data: str | None = None
    subset: int | None = None
    scale: list[int] = field(default_factory=lambda: [256])
    crop: int = 224
    colour_shift: float = 0.1
    eigen: str = "imagenet"
    normalize: str = "mean"
    strict: bool = False
    workers: int = -1
    # optimisation
    epochs: int = 74
    batch_size: int = 256
    micro_batch: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "plateau"
    patience: int = 2
    max_decays: int = 3
    warmup_epochs: float = 0.0
    # running
    out: str = "runs/vggnet"
    resume: bool = False
    device: str = "auto"
    seed: int = 0
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    save_every: int = 0
    max_steps: int | None = None
    progress: bool = True
    tensorboard: bool = True

    def check(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {self.normalize!r}; expected one of {', '.join(NORMALIZATIONS)}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"unknown amp mode {self.amp!r}; expected one of {', '.join(AMP_MODES)}")
        if self.eigen not in ("imagenet", "dataset"):
            raise ValueError(f"eigen must be 'imagenet' or 'dataset', got {self.eigen!r}")
        if not 1 <= len(self.scale) <= 2:
            raise ValueError(f"scale is S or [Smin, Smax], got {self.scale}")
        for name in ("epochs", "batch_size", "crop"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Settings from a TOML recipe (keys are :class:`TrainConfig` fields): a path, or the name of one under
    ``recipes/`` (``"paper_s256"``)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file() and path.suffix != ".toml":  # a bare name: one of the recipes/ shipped with vggnet
        for folder in (Path.cwd() / "recipes", Path(__file__).resolve().parents[2] / "recipes"):
            if (folder / f"{path.name}.toml").is_file():
                path = folder / f"{path.name}.toml"
                break
    if not path.is_file():
        raise ValueError(f"no such recipe: {path}")
    with open(path, "rb") as f:
        recipe = tomllib.load(f)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"recipe {path} has unknown settings: {', '.join(unknown)}")
    return recipe


class TrainingStopped(Exception):
    """The run stopped early: interrupted (and saved), or diverged. ``code`` is the exit status to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- data --------------------------------------------------------------------------------------------------------------
def open_datasets(cfg: TrainConfig) -> tuple[Any, Any]:
    """The training and validation sets named by ``cfg.dataset`` / ``cfg.data``."""
    kind = cfg.dataset
    if kind is None:
        kind = "folder" if cfg.data and (Path(cfg.data) / "train").is_dir() else "fashion-mnist"
    if kind == "fashion-mnist":
        train_set, val_set = load_fashion_mnist(cfg.data, "train"), load_fashion_mnist(cfg.data, "test")
    elif kind == "synthetic":
        train_set, val_set = synthetic(512, seed=cfg.seed), synthetic(128, seed=cfg.seed + 1)
    elif kind == "folder":
        if not cfg.data:
            raise ValueError("--dataset folder needs --data DIR with DIR/train/<class>/* and DIR/val/<class>/*")
        train_set = ImageFolder(Path(cfg.data) / "train")
        val_set = ImageFolder(Path(cfg.data) / "val", classes=train_set.classes)
    else:
        raise ValueError(f"unknown dataset {kind!r}; expected fashion-mnist, synthetic or folder")
    if cfg.subset:
        if not isinstance(train_set, InMemoryImages):
            raise ValueError("--subset works with fashion-mnist and synthetic data")
        train_set = train_set.subset(cfg.subset)
    return train_set, val_set


def data_statistics(train_set: Any, cfg: TrainConfig) -> dict[str, Any]:
    """Mean (and std, colour eigen-decomposition) of the training set, computed once per run."""
    if isinstance(train_set, InMemoryImages):
        mean, std = train_set.statistics()
        eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
    else:
        pixels = train_set.sample_pixels(seed=cfg.seed)
        mean, std = pixels.mean(0).tolist(), pixels.std(0).tolist()
        eigval, eigvec = rgb_eigen(pixels) if cfg.eigen == "dataset" else (IMAGENET_EIGVAL, IMAGENET_EIGVEC)
    if cfg.normalize == "imagenet":
        if len(mean) != 3:
            raise ValueError("--normalize imagenet needs RGB images")
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    elif cfg.normalize == "mean":
        std = [1.0] * len(mean)
    return {"mean": list(mean), "std": list(std), "eigval": list(eigval), "eigvec": [list(v) for v in eigvec]}


def batch_options(train_set: Any, cfg: TrainConfig, stats: dict[str, Any], train: bool) -> dict[str, Any]:
    """What ``dataset.batches`` needs beyond the order: normalisation, or the per-image transform of a folder."""
    if isinstance(train_set, InMemoryImages):
        return {"mean": stats["mean"], "std": stats["std"]}
    lo, hi = cfg.scale[0], cfg.scale[-1]
    if train:
        transform = paper_train_transform(
            (lo, hi), cfg.crop, cfg.colour_shift, stats["mean"], stats["std"], stats["eigval"], stats["eigvec"]
        )
    else:  # single-scale validation at Q = S, or (Smin + Smax) / 2 for jittered S, centre crop
        transform = eval_transform((lo + hi) // 2, cfg.crop, stats["mean"], stats["std"])
    workers = cfg.workers if cfg.workers >= 0 else min(8, max(1, (os.cpu_count() or 2) - 1))
    return {"transform": transform, "workers": workers}


# -- model -------------------------------------------------------------------------------------------------------------
def make_model(cfg: TrainConfig, num_classes: int, in_channels: int) -> VGG:
    shape = dict(
        num_classes=num_classes,
        in_channels=in_channels,
        width=cfg.width,
        pool_size=cfg.pool_size,
        fc_width=cfg.fc_width,
    )
    model = build(cfg.arch, dropout=cfg.dropout, init=cfg.init, **shape)
    if cfg.preinit:  # the paper's pre-initialisation of deeper nets from a trained net A
        net_a = build("vgg11", batch_norm=model.batch_norm, **shape)
        load_weights(net_a, cfg.preinit)
        preinit_from(model, net_a)
    if cfg.weights:
        load_weights(model, cfg.weights)
    return model


def unwrap(model: nn.Module) -> VGG:
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


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
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def accuracy_counts(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return hit[:, 0].sum(), hit.any(1).sum()


# -- the run -----------------------------------------------------------------------------------------------------------
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


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a VGG as ``cfg`` says; return the final metrics and where the outputs are."""
    cfg.check()
    ctx = dist_utils.setup(cfg.device)
    try:
        return _train(cfg, ctx)
    finally:
        dist_utils.teardown()


def _train(cfg: TrainConfig, ctx: dist_utils.Context) -> dict[str, Any]:
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    resumed = None
    if cfg.resume:
        resumed = load_checkpoint(last_path)
        # The run's identity comes from the checkpoint; only how it runs may change on the command line.
        saved = TrainConfig(**resumed["config"])
        for name in (
            "epochs",
            "device",
            "workers",
            "progress",
            "max_steps",
            "strict",
            "compile",
            "save_every",
            "tensorboard",
        ):
            setattr(saved, name, getattr(cfg, name))
        saved.out, saved.resume = cfg.out, True
        cfg = saved
    elif ctx.main and last_path.exists():
        raise ValueError(f"{last_path} exists: pass --resume to continue that run, or choose another --out")

    device = ctx.device
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    train_set, val_set = open_datasets(cfg)
    stats = resumed["stats"] if resumed else data_statistics(train_set, cfg)
    train_opts = batch_options(train_set, cfg, stats, train=True)
    val_opts = batch_options(train_set, cfg, stats, train=False)

    model = make_model(cfg, len(train_set.classes), train_set.channels)
    crop = train_set.images.shape[-1] if isinstance(train_set, InMemoryImages) else cfg.crop
    if resumed:
        model.load_state_dict(resumed["model"])
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    if ctx.distributed and model.batch_norm and device.type == "cuda":
        # SyncBatchNorm runs on GPUs only; on CPUs each rank normalises its own batch and DDP keeps the running
        # statistics equal by broadcasting rank 0's.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    # The global batch is split over ranks, then into micro-batches whose gradients are accumulated.
    if cfg.batch_size % ctx.world:
        raise ValueError(f"batch size {cfg.batch_size} does not divide over {ctx.world} processes")
    per_rank = cfg.batch_size // ctx.world
    micro = min(cfg.micro_batch or per_rank, per_rank)
    if per_rank % micro:
        raise ValueError(f"micro-batch {micro} does not divide the per-process batch {per_rank}")
    accumulate = per_rank // micro

    # fused: one kernel for weight decay, momentum and the update (CPU and CUDA); about 7% of a VGG16 CPU step.
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.1, patience=cfg.patience, threshold=1e-3
    )
    amp_dtype = autocast_mode(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    sampler = DistributedSampler(
        range(len(train_set)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
    )
    steps_per_epoch = math.ceil(sampler.num_samples / per_rank)
    total_steps = steps_per_epoch * cfg.epochs

    start_epoch, start_step, global_step, best_acc, decays = 0, 0, 0, -1.0, 0
    history: list[dict[str, float]] = []
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
        plateau.load_state_dict(resumed["plateau"])
        scaler.load_state_dict(resumed["scaler"])
        start_epoch, start_step, global_step = resumed["epoch"], resumed["step"], resumed["global_step"]
        best_acc, decays, history = resumed["best_acc"], resumed["decays"], resumed["history"]
        torch.set_rng_state(resumed["rng_cpu"])
        if device.type == "cuda" and resumed.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(resumed["rng_cuda"], device)

    def lr_at(step: int) -> float | None:
        """The one-cycle schedule's rate (linear warm-up, linear decay to zero); None under the plateau rule."""
        if cfg.schedule != "onecycle":
            return None
        warm = cfg.warmup_epochs * steps_per_epoch
        if step < warm:
            return cfg.lr * (0.1 + 0.9 * step / warm)
        return cfg.lr * max(0.0, (total_steps - step) / max(1.0, total_steps - warm))

    def checkpoint(epoch: int, step: int, path: Path) -> None:
        if not ctx.main:
            return
        save_checkpoint(
            {
                "model": unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "plateau": plateau.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "step": step,
                "global_step": global_step,
                "best_acc": best_acc,
                "decays": decays,
                "history": history,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "config": asdict(cfg),
                "stats": stats,
                "classes": list(train_set.classes),
                "crop": crop,
                "meta": model_metadata(unwrap(model)),
            },
            path,
        )

    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data_stats.json").write_text(json.dumps(stats, indent=1))
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        params = sum(p.numel() for p in model.parameters())
        print(
            f"training {unwrap(model).arch or 'custom VGG'} ({params:,} parameters) on {train_set.name}: "
            f"{len(train_set):,} images, {len(train_set.classes)} classes; validation {len(val_set):,} images; "
            f"device {device}{f' x {ctx.world} processes' if ctx.distributed else ''}, "
            f"amp {amp_dtype or 'off'}, batch {cfg.batch_size} ({micro} x {accumulate} per process)"
        )
        if resumed:
            print(f"resuming {last_path} at epoch {start_epoch + 1}, step {start_step}")
    board = TensorBoard(out / "tensorboard", enabled=ctx.main and cfg.tensorboard)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext

    def micro_batches(epoch: int, first_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        sampler.set_epoch(epoch)
        return train_set.batches(
            list(sampler),
            micro,
            train=True,
            seed=cfg.seed,
            epoch=epoch,
            device=device,
            start=first_step * accumulate,
            **train_opts,
        )

    # Reading a number off the GPU waits for it; so on CUDA the loss is looked at every few steps, not every step.
    sync_every = 1 if device.type == "cpu" else 20
    with StopRequest() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            net.train()
            t0, seen, skipped = time.perf_counter(), 0, []
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            indices_left = sampler.num_samples - start_step * per_rank
            batches = micro_batches(epoch, start_step)
            bar = _progress(cfg, ctx, epoch, steps_per_epoch, start_step)
            step = start_step
            while indices_left > 0:
                step_samples = min(per_rank, indices_left)
                indices_left -= step_samples
                lr = lr_at(global_step)
                if lr is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                for m in range(accumulate):
                    try:
                        x, y, bad = next(batches)
                    except StopIteration:
                        break
                    skipped += _bad_files(bad, cfg.strict)
                    if len(y) == 0:
                        continue
                    x = x.contiguous(memory_format=memory_format)
                    sync = m == accumulate - 1 or not ctx.distributed
                    with nullcontext() if sync else net.no_sync(), autocast():
                        logits = net(x)
                        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                    scaler.scale(loss * (len(y) / step_samples)).backward()
                    loss_sum += loss.detach() * len(y)
                    correct += (logits.argmax(1) == y).sum()
                    seen += len(y)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                global_step += 1
                out_of_steps = cfg.max_steps is not None and global_step >= cfg.max_steps
                saving = bool(cfg.save_every) and global_step % cfg.save_every == 0
                # Every rank must reach the same collectives: look only at points all ranks agree on.
                if step % sync_every and indices_left > 0 and not (out_of_steps or saving):
                    continue
                # A NaN or infinity stays in the running sum, so one look catches any step since the last.
                running_loss = loss_sum.item() / max(seen, 1)
                diverged, stop_now = dist_utils.reduce_any(
                    [not math.isfinite(running_loss), stop.signal is not None], ctx
                )
                if diverged:
                    raise TrainingStopped(
                        f"loss is {running_loss} at epoch {epoch + 1}, step {step}: training diverged (lower --lr?). "
                        f"The last good checkpoint is "
                        f"{last_path if last_path.exists() else 'none (no epoch finished yet)'}",
                        3,
                    )
                if bar is not None:
                    rate = seen * ctx.world / (time.perf_counter() - t0)
                    bar.set_postfix_str(
                        f"{rate:.0f} img/s, loss {running_loss:.4f}, lr {optimizer.param_groups[0]['lr']:.2g}",
                        refresh=False,
                    )
                    bar.update(step - bar.n)
                if stop_now or (out_of_steps and indices_left > 0):
                    checkpoint(epoch, step, last_path)
                    if bar is not None:
                        bar.close()
                    if stop_now:
                        sig = stop.signal or signal.SIGTERM
                        raise TrainingStopped(
                            f"interrupted at epoch {epoch + 1}, step {step}; saved {last_path}. Resume with:\n"
                            f"  vggnet train --out {cfg.out} --resume",
                            128 + sig,
                        )
                    return {"stopped_at": (epoch, step), "checkpoint": str(last_path)}
                if saving:
                    checkpoint(epoch, step, last_path)
            if bar is not None:
                bar.close()
            loss_sum, correct = loss_sum.item(), correct.item()
            start_step = 0
            seconds = time.perf_counter() - t0

            train_loss, train_correct, train_seen = dist_utils.reduce_sum([loss_sum, correct, seen], ctx)
            val = evaluate_split(net, val_set, val_opts, micro, device, memory_format, autocast, ctx)
            row = {
                "epoch": epoch + 1,
                "step": global_step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss / max(train_seen, 1),
                "train_top1_err": 1 - train_correct / max(train_seen, 1),
                "val_loss": val["loss"],
                "val_top1_err": 1 - val["top1"],
                "val_top5_err": 1 - val["top5"],
                "images_per_s": train_seen / seconds,
                "seconds": seconds,
            }
            history.append(row)
            improved = val["top1"] > best_acc
            best_acc = max(best_acc, val["top1"])
            finished = epoch + 1 == cfg.epochs or (cfg.max_steps is not None and global_step >= cfg.max_steps)
            if cfg.schedule == "plateau":
                before = optimizer.param_groups[0]["lr"]
                plateau.step(val["top1"])
                if optimizer.param_groups[0]["lr"] < before:
                    decays += 1
                    if decays > cfg.max_decays:  # the paper stopped after the third decrease had run its course
                        finished = True
            checkpoint(epoch + 1, 0, last_path)
            if ctx.main:
                if improved:
                    shutil.copyfile(last_path, best_path)
                write_csv(history, out / "metrics.csv")
                plot_curves(history, out / "curves.png")
                board.scalars({k: v for k, v in row.items() if k not in ("epoch", "step")}, epoch + 1)
                note = f", {len(skipped)} bad files skipped" if skipped else ""
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, "
                    f"top-1 err {100 * row['train_top1_err']:.2f}% | val loss {val['loss']:.4f}, "
                    f"top-1 err {100 * row['val_top1_err']:.2f}%, top-5 err {100 * row['val_top5_err']:.2f}% | "
                    f"lr {row['lr']:.3g}, {row['images_per_s']:.0f} img/s, {seconds:.1f}s{note}",
                    flush=True,
                )
            if finished:
                break
    board.close()

    same, digest = dist_utils.same_weights_everywhere(unwrap(model), ctx)
    if not same:
        raise TrainingStopped("ranks ended with different weights", 4)
    result = {
        "val_top1_err": history[-1]["val_top1_err"] if history else None,
        "best_val_acc": best_acc,
        "history": history,
        "weights_digest": digest,
    }
    if ctx.main:
        final = save_weights(
            unwrap(model),
            out / "model.safetensors",
            metadata={
                "classes": json.dumps(list(train_set.classes)),
                "crop": json.dumps(crop),
                "mean": json.dumps(stats["mean"]),
                "std": json.dumps(stats["std"]),
            },
        )
        result.update(
            checkpoint=str(last_path),
            best=str(best_path),
            weights=str(final),
            metrics=str(out / "metrics.csv"),
            curves=str(out / "curves.png"),
        )
        if ctx.distributed:
            print(f"weights identical on all {ctx.world} ranks (sha256 {digest[:16]})")
        print(
            f"done: top-1 accuracy on {val_set.name}: {100 * (1 - history[-1]['val_top1_err']):.2f}% at the end, "
            f"{100 * best_acc:.2f}% at best\n"
            f"  checkpoint  {last_path} (best: {best_path})\n  weights     {final}\n"
            f"  metrics     {out / 'metrics.csv'}\n  curves      {out / 'curves.png'}\n"
            f"  tensorboard {out / 'tensorboard'}"
        )
    return result


@torch.inference_mode()
def evaluate_split(
    net: nn.Module,
    dataset: Any,
    options: dict[str, Any],
    batch_size: int,
    device: torch.device,
    memory_format: torch.memory_format,
    autocast: Any,
    ctx: dist_utils.Context,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of a validation set, each rank taking every world-th image."""
    net.eval()
    indices = list(range(ctx.rank, len(dataset), ctx.world))
    loss, top1, top5, n = 0.0, 0.0, 0.0, 0
    for x, y, _ in dataset.batches(indices, batch_size, train=False, seed=0, epoch=0, device=device, **options):
        if len(y) == 0:
            continue
        with autocast():
            logits = net(x.contiguous(memory_format=memory_format)).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        c1, c5 = accuracy_counts(logits, y)
        top1, top5, n = top1 + c1.item(), top5 + c5.item(), n + len(y)
    loss, top1, top5, n = dist_utils.reduce_sum([loss, top1, top5, n], ctx)
    return {"loss": loss / max(n, 1), "top1": top1 / max(n, 1), "top5": top5 / max(n, 1)}


def _progress(cfg: TrainConfig, ctx: dist_utils.Context, epoch: int, total: int, initial: int):
    if not (cfg.progress and ctx.main):
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        leave=False,
        mininterval=1.0,
        dynamic_ncols=True,
    )


def _bad_files(bad: list[str], strict: bool) -> list[str]:
    for item in bad:
        if strict:
            raise ValueError(f"bad image {item} (--strict)")
        print(f"warning: skipped bad image {item}", file=sys.stderr)
    return bad
