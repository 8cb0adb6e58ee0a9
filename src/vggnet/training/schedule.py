"""The learning rate over a run, owned by one object (:class:`Schedule`): the warm-up from a tenth of the rate, the
one-cycle schedule's rate at every step, and the paper's plateau rule at the end of every epoch (the rate divided by
10 when validation accuracy stops improving; epochs of the warm-up, and with ``hold_at_chance`` those at chance, not
counted; a decrease forced ``final_decay`` epochs before the end where the rule has not fired, which caps the first
rate; the run ended once ``max_decays`` decreases have run their course).

The plateau rule is torch's ``ReduceLROnPlateau``; a checkpoint holds its state dict under ``plateau`` and the count
of decreases under ``decays``, as it always has.
"""

from __future__ import annotations

from typing import Any

import torch

from .settings import TrainConfig


class Schedule:
    """The rate of every parameter group of ``optimizer`` over a run of ``cfg``, whose epochs are ``steps_per_epoch``
    optimizer steps on data of ``classes`` classes. Each group's ``lr_scale`` (a pretrained layer's lower rate) scales
    what the warm-up and one-cycle set; the plateau rule divides every group's rate alike."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, classes: int) -> None:
        self.optimizer, self.cfg = optimizer, cfg
        self.steps_per_epoch, self.classes = steps_per_epoch, classes
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=cfg.patience, threshold=1e-3
        )
        self.decays = 0  # decreases of the rate so far (the plateau rule's, and a forced one)

    @property
    def rate(self) -> float:
        """The rate now (of the last parameter group: the new layers' when fine-tuning)."""
        return self.optimizer.param_groups[-1]["lr"]

    def before_step(self, step: int) -> None:
        """The rate for optimizer step ``step`` of the run: the one-cycle schedule's (linear warm-up, linear decay to
        zero) at every step; the plateau schedule's warm-up, after which its rule changes rates at the end of an
        epoch (:meth:`after_validation`) and this leaves them as they are."""
        cfg = self.cfg
        total = self.steps_per_epoch * cfg.epochs
        warm = cfg.warmup_epochs * self.steps_per_epoch
        if cfg.schedule != "onecycle":
            if not warm or step > warm:
                return  # the plateau rule's rates: the warm-up has handed them over at the full rate
            lr = cfg.lr * min(1.0, 0.1 + 0.9 * step / warm)
        elif step < warm:
            lr = cfg.lr * (0.1 + 0.9 * step / warm)
        else:
            lr = cfg.lr * max(0.0, (total - step) / max(1.0, total - warm))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def after_validation(self, epoch: int, top1: float) -> bool:
        """The plateau rule after epoch ``epoch`` (0-based) was validated at top-1 accuracy ``top1``; True when the
        run is finished by it (the paper stopped after its third decrease)."""
        cfg = self.cfg
        if cfg.schedule != "plateau" or not self.counts(epoch, top1):  # val_every is 1 for the plateau schedule
            return False
        before = self.rate
        self.plateau.step(top1)
        if self.decays == 0 and cfg.final_decay and epoch + 1 == cfg.epochs - cfg.final_decay:
            self.decay()  # the run's budget ends before the plateau rule fired: finish at a tenth
        if self.rate < before:
            self.decays += 1
        return self.decays > cfg.max_decays

    def counts(self, epoch: int, top1: float) -> bool:
        """Whether the plateau rule sees this epoch: not during the warm-up, nor (``hold_at_chance``) while the run's
        validation accuracy has not left chance (5 points above it), so that a run stuck there keeps its full rate."""
        if epoch + 1 <= self.cfg.warmup_epochs:
            return False
        return not self.cfg.hold_at_chance or top1 > 1 / self.classes + 0.05

    def decay(self) -> None:
        """Divide every rate by 10 as the plateau rule would, and restart its count of epochs without improvement
        (the rule's next step records the rates it then sees)."""
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.1
        self.plateau.num_bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds of the schedule: the plateau rule's state and the decreases so far."""
        return {"plateau": self.plateau.state_dict(), "decays": self.decays}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.plateau.load_state_dict(saved["plateau"])
        self.decays = int(saved["decays"])
