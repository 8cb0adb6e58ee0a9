"""Setting a training run up: its data opened, its model built (restored, shaped as pretrained weights say, or as
the settings say; pre-initialised from net A; frozen), its optimizer, learning-rate schedule
(:class:`~vggnet.training.schedule.Schedule`) and autocast, all gathered in one
:class:`Run` that the loop (:mod:`vggnet.training.loop`) works with, and said in a few lines."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..base.classes import ClassMatching
from ..base.configs import layer_kinds
from ..base.files import atomic_write_text
from ..base.hardware import cpu_has_bf16
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, NAMED_NORMALIZATIONS, Normalization
from ..base.shape import OPTIONS, options_of
from ..data.device import DeviceImageFolder, decodes_on_device
from ..data.folders import ImageFolder
from ..data.opening import OpenedData, open_datasets
from ..formats import WeightsFile
from ..formats.found import decode_metadata
from ..network.layers import input_scale_of, preinit_from
from ..network.model import VGG, build
from ..network.weights import load_weights, read_weights, rgb_input
from . import distributed as dist_utils
from .checkpoint import TrainState, load_checkpoint, unwrap
from .metrics import TensorBoard
from .pretrained import LoadReport, load_pretrained
from .schedule import Schedule
from .settings import TrainConfig, load_recipe  # noqa: F401  (load_recipe: part of this module's API)


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
    estimated: bool = False  # whether the time an epoch takes here was said (once, in the first epoch trained)

    @property
    def per_rank(self) -> int:
        return self.micro * self.accumulate

    @property
    def steps_per_epoch(self) -> int:
        return self.state.schedule.steps_per_epoch

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


def _resumed(last: Path) -> dict:
    """The checkpoint a resumed run continues from; where it does not read, a sentence saying what to do."""
    try:
        return load_checkpoint(last)
    except ValueError as err:
        if not last.is_file():
            raise
        raise ValueError(f"{err}; delete it to train this run again from its first epoch") from None


def start(cfg: TrainConfig, ctx: dist_utils.Context, given: set[str] | None = None) -> Run:
    """Open the data, build (or restore) the model and optimizer, and say what the run is."""
    last = Path(cfg.out) / "last.pt"
    saved = _resumed(last) if cfg.resume else None
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
    sampler = DistributedSampler(
        range(len(data.train)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed
    )
    steps_per_epoch = math.ceil(sampler.num_samples / (micro * accumulate))
    state = TrainState(
        model,
        optimizer,
        Schedule(optimizer, cfg, steps_per_epoch, len(data.train.classes)),
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
        sampler=sampler,
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
    if weights is not None:
        report = load_pretrained(model, weights, list(data.train.classes), ClassMatching.of(cfg))
    else:
        report = None
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
