"""Training VGG the paper's way (Sect. 3.1): SGD with momentum, weight decay, dropout, and the plateau schedule
(:class:`~vggnet.training.schedule.Schedule`); and fine-tuning from pretrained weights (new fc8, frozen layers, a
lower rate for pretrained layers).

Read it top to bottom: :func:`train` sets a run up (:func:`~vggnet.training.setup.start`), calls
:func:`train_one_epoch` and validates (:func:`~vggnet.training.validate.evaluate_split`) once per epoch, and ends
every way a run can end in one :class:`RunResult`. Runs resume exactly: the data order and every augmentation are
functions of (seed, epoch, position), and the checkpoint (:class:`~vggnet.training.checkpoint.TrainState`) holds
everything else that changes.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..base.files import atomic_copy, folder_lock
from ..base.progress import Progress, duration, showing
from ..base.progress import enabled as shown
from ..data.dataset import Batch
from ..network.weights import save_weights
from . import distributed as dist_utils
from .checkpoint import unwrap
from .metrics import plot_curves, stuck_at_chance, write_csv
from .settings import TrainConfig, load_recipe  # noqa: F401  (load_recipe: part of this module's API)
from .setup import Run, start
from .validate import evaluate_split


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
                result = finish(run)
            return result if stop.signal is None else stopped_at_the_end(result, stop.signal)
    finally:
        dist_utils.teardown()


def stopped_at_the_end(result: RunResult, signum: int) -> RunResult:
    """A stop asked for while the last epoch ended (its validation, the final weights): the run is complete and
    saved, and the stop is still honoured, so that whoever runs it (a reproduction's next run) stops too."""
    result.status, result.exit_code = "interrupted", 128 + signum
    result.message = (
        f"{result.message}\nreceived {signal.Signals(signum).name} as the run ended: it is complete and saved, and "
        "nothing more is started"
    )
    return result


# -- setting a run up -----------------------------------------------------------------------------------------------


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
        run.steps_per_epoch,
        state.step,
        f"epoch {epoch + 1}/{cfg.epochs}",
        cfg.log_every,
        enabled=cfg.progress and run.ctx.main,
        estimate=None if run.estimated else epoch_estimate(run, epoch),
    )
    run.estimated = True
    left = len(order) - state.step * run.per_rank
    # Reading a number off the GPU waits for it; so on CUDA the loss is checked every few steps, not every step.
    check_every = 1 if run.ctx.device.type == "cpu" else 20
    try:
        while left > 0:
            images = min(run.per_rank, left)
            left -= images
            state.schedule.before_step(state.global_step)
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


def epoch_estimate(run: Run, epoch: int) -> Callable[[float], str]:
    """The line that says, from the first steps of the first epoch a process trains, what an epoch (and the run)
    will take on this machine: a run of the paper's 74 epochs at 224 is days on a CPU, and should say so first."""
    cfg, first = run.cfg, run.state.step

    def say(seconds: float) -> str:  # seconds: what the rest of this epoch takes
        per_epoch = seconds * run.steps_per_epoch / max(run.steps_per_epoch - first, 1)
        left = per_epoch * (cfg.epochs - epoch - 1) + seconds
        epochs = f"the {cfg.epochs - epoch} epochs left" if cfg.epochs - epoch > 1 else "this one"
        return f"about {duration(per_epoch)} per epoch here, {duration(left)} for {epochs} (timed on the first steps)"

    return say


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
    progress.update(state.step, f"{rate:.0f} img/s, loss {running_loss:.4f}, lr {state.schedule.rate:.2g}")
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
        "lr": state.schedule.rate,
        "train_loss": loss / max(seen, 1),
        "train_top1_err": 1 - correct / max(seen, 1),
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }
    improved = False
    if finished or (epoch + 1) % cfg.val_every == 0:
        # Inference holds no activations for backward: twice the training micro-batch fits.
        with showing(shown() and cfg.progress and run.ctx.main, cfg.log_every):
            val = evaluate_split(
                run.net, run.data.val, 2 * run.micro, run.ctx, run.memory_format, run.autocast, cfg.val_flip
            )
        row.update(val_loss=val["loss"], val_top1_err=1 - val["top1"], val_top5_err=1 - val["top5"])
        improved = val["top1"] > state.best_acc
        state.best_acc = max(state.best_acc, val["top1"])
        finished |= state.schedule.after_validation(epoch, val["top1"])  # the plateau rule; val_every is 1 for it
    state.history.append(row)
    state.epoch, state.step = epoch + 1, 0
    save(run, run.out / "last.pt")
    if run.ctx.main:
        report_epoch(run, row, improved, len(totals.skipped), finished)
        warning = stuck_at_chance(state.history, len(state.classes), cfg.epochs)
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    return finished


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
