"""``vggnet train``: a recipe (:class:`Recipe`) and the run's settings (:class:`~vggnet.training.settings.TrainConfig`,
each flag counting where typed), trained by :func:`vggnet.training.train`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ..base.settings import setting, typed
from ..training.settings import TrainConfig
from .command import Command


@dataclass
class Recipe:
    recipe: str | None = setting(
        None, "a TOML recipe: a path or a shipped name (fashion_mnist, finetune, paper_s256 ...)"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import load_recipe, train

    given = typed(args, TrainConfig)
    if str(given.get("arch", "")).startswith("["):
        try:
            given["arch"] = json.loads(given["arch"])
        except json.JSONDecodeError as err:
            raise ValueError(f"--arch {given['arch']} is not a JSON configuration list: {err}") from None
    settings = load_recipe(args.recipe) if args.recipe else {}
    result = train(TrainConfig(**{**settings, **given}), given=set(given) | set(settings))
    if result.exit_code:
        print(f"vggnet train: {result.message}", file=sys.stderr)
    elif result.status != "finished":
        print(result.message)
    return result.exit_code


TRAIN_TEXT = (
    "Train a VGG the paper's way, or fine-tune one from pretrained weights. Defaults are the paper's; --recipe loads a "
    "TOML file of settings (a path, or the name of one shipped with vggnet), and any flag overrides it. Under "
    "torchrun it trains on every process."
)
COMMAND = Command(
    "train",
    "train or fine-tune a VGG (the paper's recipe by default)",
    cmd_train,
    (Recipe, TrainConfig),
    TRAIN_TEXT,
    only_typed=(TrainConfig,),
)
