"""A reproduction's settings as a folder or a report recorded them: what a setting the record predates meant then
(:func:`backfilled`), and the command that runs them with today's code (:func:`command_line`)."""

from __future__ import annotations

from typing import Any

from ..base.settings import flag_of
from .plan import Settings

# Settings a folder's record may lack, because it was made before they existed, with the value they had then.
BEFORE_THEY_EXISTED: dict[str, Any] = {
    "first_rate_cap": None,
    "warmup_epochs": 0.0,
    "hold_at_chance": False,
    "stall_test": False,
    "stall_epochs": 30,
    "rest_init": "same",
}


def backfilled(recorded: dict[str, Any]) -> dict[str, Any]:
    """A folder's recorded settings, with those it predates at the value they had before they existed."""
    return {**BEFORE_THEY_EXISTED, **recorded}


def command_line(settings: Settings) -> str:
    """The command that runs these settings' plan with today's code: the flags whose values differ from its
    defaults, and the seeds (``--out`` and the runtime's own left out)."""
    default = Settings()
    flags = []
    for name in Settings.__dataclass_fields__:
        mine = getattr(settings, name)
        if name == "first_rate_cap" and mine is None:  # before the cap: the budget's final stage alone
            mine = settings.epochs - settings.final_epochs
        if name in ("out", "device", "progress", "amp") or mine is None:
            continue
        if name in ("seeds", "scale_seeds") or mine != getattr(default, name):
            if isinstance(mine, bool):
                flags.append(flag_of(name) if mine else f"--no-{name.replace('_', '-')}")
            else:
                flags.append(f"{flag_of(name)} {' '.join(map(str, mine)) if isinstance(mine, list) else mine}")
    return " ".join(["vggnet reproduce", *flags])
