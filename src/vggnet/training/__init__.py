"""The training layer: the loop (``loop``: :func:`train`, one epoch, validation, the plateau rule), a run's settings
and the TOML recipes that fill them (``settings``: :class:`TrainConfig`), checkpoints (``checkpoint``), metrics and
curves (``metrics``) and the set-up of devices and torchrun processes (``distributed``). It may import the data layer,
the model (``model``, ``weights``, ``configs``) and the base modules; nothing that evaluates, exports, serves or
reproduces.
"""

from .loop import RunResult, train
from .settings import TrainConfig, load_recipe, recipe_names

__all__ = ["RunResult", "TrainConfig", "load_recipe", "recipe_names", "train"]
