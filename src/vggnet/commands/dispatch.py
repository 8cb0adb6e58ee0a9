"""What each ``vggnet`` command does: its function (``cmd_*``, a few lines over the Python API), the dataclasses of
its flags (imported here, as code; what a command needs to run it imports when it runs) and its line in ``vggnet
--help``. :mod:`vggnet.cli` makes the
parser from :data:`COMMANDS` and turns every outcome into an exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.files import folder_lock
from ..base.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, ProgressSettings, setting, typed
from ..bench.run import BenchSettings
from ..cluster.collection import ROWS_PER_FILE
from ..evaluate import EvalSettings
from ..export import ExportSettings, Int8Settings
from ..features import FeatureSettings
from ..inference import ModelChoice
from ..inside.settings import InsideSettings
from ..reproduce.plan import Settings
from ..serving.settings import ServeSettings
from ..training.settings import TrainConfig
from .convert import ConvertSettings
from .info import InfoSettings
from .predict import PredictSettings
from .probe import ProbeSettings
from .stylize import StylizeSettings


@dataclass
class Recipe:
    recipe: str | None = setting(
        None, "a TOML recipe: a path or a shipped name (fashion_mnist, finetune, paper_s256 ...)"
    )


@dataclass
class OnRay:
    ray: str | None = setting(
        None,
        "run on a Ray cluster: auto (the one this machine belongs to), local (start Ray here) or its head's HOST:PORT "
        "(a reproduction: each run one task, its files written into --out as a serial run writes them; a collection: "
        "a pool of actors loading the model once each, Parquet rows into --out, an unreadable image a row with its "
        "reason)",
        metavar="ADDRESS",
    )
    ray_log: bool = setting(
        False, "with --ray: show Ray's own log here (by default it goes to the files of the cluster's session)"
    )


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


@dataclass
class CollectionFlags(OnRay):
    actors: int = setting(2, "with --ray: actors running the model", AT_LEAST_ONE)
    actor_cpus: float = setting(1.0, "with --ray: CPUs of each actor (its threads)", POSITIVE)
    rows_per_file: int = setting(
        ROWS_PER_FILE,
        "with --ray: rows of each Parquet file (written in parallel, named to sort in the collection's order)",
        AT_LEAST_ONE,
    )


def build(cls: type, args: argparse.Namespace) -> Any:
    return cls(**typed(args, cls))


# -- the commands ----------------------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from .info import run_info

    print(run_info(build(InfoSettings, args)))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert, target

    s = build(ConvertSettings, args)
    with folder_lock(target(s), "weights file"):
        print("\n".join(convert(s)))
    return 0


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


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluate import run_eval

    s = build(EvalSettings, args)
    check_out_folder(s.out)
    run_eval(s, s.load())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import images_to_predict, run_predict

    s, ray = build(PredictSettings, args), build(CollectionFlags, args)
    if ray.ray:
        from ..cluster.collection import Job

        job = Job("predict", scales=[s.scale] if s.scale else None, top=s.top, protocol=s.protocol)
        return on_ray(s, ray, s.data, None, None, job)
    drawn = [flag for flag, value in (("--heatmap", s.heatmap), ("--cam", s.cam)) if value]
    if drawn and len(s.images) + bool(s.data) != 1:
        raise ValueError(f"{drawn[0]} draws one image; give a single IMAGE")
    (loaded,) = s.load(one="predict")  # the model's flags first, as every command checks them
    images = images_to_predict(s)
    if drawn and len(images) != 1:
        raise ValueError(f"{drawn[0]} draws one image; {s.images[0] if s.images else s.data} holds {len(images)}")
    run_predict(s, loaded, images)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import check_options, run_export

    s, int8 = build(ExportSettings, args), build(Int8Settings, args)
    check_out_folder(s.out)
    check_options(tuple(s.format), s.opset, int8 if s.int8 else None)
    (loaded,) = s.load(one="export")
    run_export(s, loaded, int8 if s.int8 else None)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from ..features import run_features

    s, ray = build(FeatureSettings, args), build(CollectionFlags, args)
    if ray.ray:
        from ..cluster.collection import Job

        if s.class_map or s.classes_by_position:
            raise ValueError(
                "with --ray each row carries its folder's class name; --class-map and "
                "--classes-by-position label a local features file"
            )
        job = Job("features", s.layer, s.scales, s.flip, s.l2)
        return on_ray(s, ray, s.data, s.split, s.limit, job)
    if not s.out.endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {s.out}")
    (loaded,) = s.load(one="features")
    with folder_lock(s.out, "feature file"):
        run_features(s, loaded)
    return 0


def on_ray(s: Any, ray: CollectionFlags, data: str | None, split: str | None, limit: int | None, job: Any) -> int:
    """``vggnet features --ray`` and ``vggnet predict --ray``: the collection through a pool of actors on the
    cluster, its rows written as Parquet into --out."""
    from ..cluster.collection import collection_rows, run_collection

    if not data or not s.out:
        raise ValueError("--ray runs over a collection: give --data (a folder, a list of paths, Parquet) and --out DIR")
    if s.out.endswith(".safetensors") or (os.path.exists(s.out) and not os.path.isdir(s.out)):
        raise ValueError(f"--out {s.out}: with --ray the rows are Parquet files in a folder; give a folder")
    if len(s.weights) != 1:
        raise ValueError("--ray runs one model: give one --weights")
    job.threads = max(1, round(ray.actor_cpus))
    rows = collection_rows(data, split, limit)
    with folder_lock(s.out, "output folder"):
        pool = (ray.actors, ray.actor_cpus, ray.rows_per_file, ray.ray_log)
        done = run_collection(ray.ray, rows, s.weights[0], s.arch, s.normalize, job, s.out, *pool)
    print(f"wrote {done.rows} rows ({job.kind}) to {done.path}")
    if done.failed:
        print(f"warning: {done.summary()}", file=sys.stderr)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from ..features import load_features
    from .probe import linear_probe

    s = build(ProbeSettings, args)
    from ..base.classes import ClassMatching

    report = linear_probe(load_features(s.train), load_features(s.test), s.c, ClassMatching.of(s))
    print(report.table())
    print(f"accuracy: {100 * report.accuracy:.2f}%")
    print(f"mean class accuracy: {100 * report.mean_class_accuracy:.2f}%")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce.cost import measure_cost, plan_table, power_plan
    from ..reproduce.plan import plan, with_paper_defaults
    from ..reproduce.report import write_report
    from ..reproduce.runs import check_folder, execute, stopping

    actions, values = build(ReproduceActions, args), typed(args, Settings)
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


def cmd_serve(args: argparse.Namespace) -> int:

    model, s = build(ModelChoice, args), build(ServeSettings, args)
    s.check()
    require_serve_extra("serving")
    from ..serving.server import serve_model

    serve_model(model, s)
    return 0


def cmd_inside(args: argparse.Namespace) -> int:

    require_serve_extra("the inside view")
    from ..inside.app import run_inside

    run_inside(build(ModelChoice, args), build(InsideSettings, args))
    return 0


def require_serve_extra(what: str) -> None:
    """A sentence, not an ImportError, where the serve extra's packages are missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ValueError(f"{what} needs vggnet's serve extra (pip install 'vggnet[serve]'): {err}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from ..base.devices import pick_device
    from ..bench.run import run_bench

    s = build(BenchSettings, args)
    s.check()
    pick_device(s.device)
    run_bench(s)
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    from .stylize import run_stylize

    print("\n".join(run_stylize(build(StylizeSettings, args))))
    return 0


def check_out_folder(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a folder")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    flags: tuple[type, ...]  # the settings dataclasses whose fields are its flags
    description: str | None = None

    def classes(self) -> list[type]:
        return list(self.flags)


TRAIN_TEXT = (
    "Train a VGG the paper's way, or fine-tune one from pretrained weights. Defaults are the paper's; --recipe loads a "
    "TOML file of settings (a path, or the name of one shipped with vggnet), and any flag overrides it. Under "
    "torchrun it trains on every process."
)
REPRODUCE_TEXT = (
    "Run the paper's experiments (Sect. 4): A to E at the small S, the scale nets at the large and jittered S on data "
    "with objects at many sizes, multi-scale and multi-crop testing, and an ensemble; every decision on a validation "
    "split held out from the training images, the test set read once at the end. Each run has its own folder under "
    "--out; running again skips finished runs and resumes an interrupted one. Writes reproduce.md, reproduce.json and "
    "reproduce.png."
)
COMMANDS = (
    Command(
        "info",
        "Table 1, parameters, GMACs and memory; or one architecture layer by layer",
        cmd_info,
        (InfoSettings,),
    ),
    Command(
        "convert",
        "any VGG file (Caffe, Keras, PyTorch ports, torchvision, timm) to a vggnet file, saying what it found",
        cmd_convert,
        (ConvertSettings,),
    ),
    Command(
        "train",
        "train or fine-tune a VGG (the paper's recipe by default)",
        cmd_train,
        (Recipe, TrainConfig),
        TRAIN_TEXT,
    ),
    Command(
        "eval",
        "top-1/top-5 error under the paper's test protocols (layout of Tables 3-6)",
        cmd_eval,
        (EvalSettings, ProgressSettings),
    ),
    Command(
        "predict",
        "top-k classes of images, Grad-CAM, and a heat map of the dense class scores",
        cmd_predict,
        (PredictSettings, CollectionFlags, ProgressSettings),
    ),
    Command(
        "export",
        "TorchScript and ONNX (dense head, dynamic batch and size), checked",
        cmd_export,
        (ExportSettings, Int8Settings),
    ),
    Command(
        "features",
        "one descriptor per image (the paper's Appendix B), saved as safetensors",
        cmd_features,
        (FeatureSettings, CollectionFlags, ProgressSettings),
    ),
    Command(
        "probe",
        "a linear SVM on feature files: mean class accuracy and a per-class table",
        cmd_probe,
        (ProbeSettings,),
    ),
    Command(
        "reproduce",
        "the paper's Tables 3-6 in miniature: plan, train, evaluate, report with verdicts",
        cmd_reproduce,
        (ReproduceActions, Settings),
        REPRODUCE_TEXT,
    ),
    Command(
        "serve",
        "serve a model over HTTP: the Open Inference Protocol (Triton/KServe v2), /predict, a page",
        cmd_serve,
        (ModelChoice, ServeSettings),
    ),
    Command(
        "inside",
        "a learner's view of an image going through a VGG, block by block (a page, or a folder)",
        cmd_inside,
        (ModelChoice, InsideSettings),
    ),
    Command(
        "stylize",
        "neural style transfer (Gatys et al.): CONTENT in STYLE's style, on any VGG-19 vggnet loads",
        cmd_stylize,
        (StylizeSettings, ProgressSettings),
    ),
    Command(
        "bench",
        "images/s and memory against torchvision's VGG, in one process",
        cmd_bench,
        (BenchSettings,),
    ),
)
