"""``vggnet reproduce``: the paper's experiments in miniature (:mod:`vggnet.reproduce`): what to do
(:class:`ReproduceActions`: run, plan, report, on Ray) and the plan's settings (each flag counting where typed)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from ..base.files import folder_lock
from ..base.settings import AT_LEAST_ONE, NON_NEGATIVE, setting, typed
from ..reproduce.plan import Settings
from .command import Command, parsed
from .on_ray import OnRay


@dataclass
class ReproduceActions(OnRay):
    paper: bool = setting(
        False, "the paper's runs exactly: crop 224, full width, 74 epochs, N(0, 0.01), batch 256, C D E"
    )
    plan: bool = setting(
        False, "print the runs, their estimated cost, the tables and each decision's data; run nothing"
    )
    report_only: bool = setting(False, "write the report from the runs already done")
    run_cpus: int = setting(1, "with --ray: CPUs each run needs (its threads)", AT_LEAST_ONE)
    run_gpus: float = setting(0.0, "with --ray: GPUs each run needs", NON_NEGATIVE)
    power: str | None = setting(
        None,
        "with --plan: a finished (or pilot) reproduction's folder, or a published report (docs/reproduce.json); "
        "print, per finding, the seeds that 80 percent power at the paper's effect needs with its per-seed spreads, "
        "and what they would cost here",
    )


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce.cost import measure_cost, plan_table, power_plan
    from ..reproduce.plan import plan, with_paper_defaults
    from ..reproduce.report import write_report
    from ..reproduce.runs import check_folder, execute, stopping

    actions, values = parsed(ReproduceActions, args), typed(args, Settings)
    settings = Settings(**(with_paper_defaults(values) if actions.paper else values))
    settings.check()
    runs = plan(settings)
    if actions.power is not None:
        if not actions.plan:
            raise ValueError("--power goes with --plan (it plans seeds; it runs nothing)")
        print(power_plan(actions.power))
        return 0
    if actions.plan:
        print(plan_table(settings, runs, measure_cost(settings)))
        return 0
    if actions.ray and not actions.report_only:
        from ..cluster.connect import connect

        check_folder(settings)  # a folder of other settings is refused before Ray starts
        connect(actions.ray, show_log=actions.ray_log)  # nothing is started or written without a cluster to run on
    with folder_lock(settings.out, "reproduction folder"):
        if actions.report_only:
            check_folder(settings)  # a report of this folder's runs, made with these settings
            _say_unfinished(settings, runs)
        elif actions.ray:
            from ..cluster.runs import execute_on_ray

            stopping(execute_on_ray, settings, runs, actions.ray, actions.run_cpus, actions.run_gpus)
        else:
            execute(settings, runs)
        for path in write_report(settings, runs):
            print(f"wrote {path}")
    return 0


def _say_unfinished(settings: Any, runs: list) -> None:
    """A report of a folder whose plan is not done yet says so, and how to finish it."""
    from ..reproduce.runs import state_of

    todo = [spec.name for spec in runs if state_of(spec, settings) not in ("validated", "failed")]
    if todo:
        names = ", ".join(todo[:4]) + (" ..." if len(todo) > 4 else "")
        print(
            f"{len(todo)} of the plan's {len(runs)} runs are not done ({names}): the report covers the others; the "
            "same command without --report-only finishes them",
            file=sys.stderr,
        )


REPRODUCE_TEXT = (
    "Run the paper's experiments (Sect. 4): A to E at the small S, the scale nets at the large and jittered S on data "
    "with objects at many sizes, multi-scale and multi-crop testing, and an ensemble; every decision on a validation "
    "split held out from the training images, the test set read once at the end. Each run has its own folder under "
    "--out; running again skips finished runs and resumes an interrupted one. Writes reproduce.md, reproduce.json and "
    "reproduce.png."
)
COMMAND = Command(
    "reproduce",
    "the paper's Tables 3-6 in miniature: plan, train, evaluate, report with verdicts",
    cmd_reproduce,
    (ReproduceActions, Settings),
    REPRODUCE_TEXT,
    only_typed=(Settings,),
)
