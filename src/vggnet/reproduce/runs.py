"""Running a reproduction's plan (:mod:`vggnet.reproduce.plan`): each run trained in its own folder (finished ones
skipped, an interrupted one resumed), then evaluated on the validation split it held out, and only once every run is
trained and validated, on the test set. What a run saved (``val.safetensors``, ``test.safetensors``: soft-max
posteriors per protocol and Q, the labels, the run's history and settings) is all the report reads.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..base.files import atomic_write_text, save_safetensors
from ..base.settings import RESULT, names
from .plan import RunSpec, Settings, plan, train_config, wanted
from .recorded import backfilled
from .saved import DamagedFile, read_split, split_keys
from .stats import MIN_SEEDS


def missing(spec: RunSpec, settings: Settings, split: str, chosen: set[str] | None = None) -> dict[str, list[int]]:
    """What :func:`wanted` lists that the run's file for ``split`` does not hold yet."""
    try:
        have = split_keys(Path(settings.out) / spec.name, split)
    except DamagedFile:  # evaluated again, from the run's weights
        have = set()
    gaps = {m: [q for q in qs if f"{m}@{q}" not in have] for m, qs in wanted(spec, settings, split, chosen).items()}
    return {m: qs for m, qs in gaps.items() if qs}


def state_of(spec: RunSpec, settings: Settings) -> str:
    """``validated`` (trained and evaluated on its validation split), ``trained`` (weights, evaluation missing or
    incomplete), ``failed``, ``interrupted`` (a checkpoint to resume) or ``new``."""
    folder = Path(settings.out) / spec.name
    if (folder / "val.safetensors").is_file() and not missing(spec, settings, "val"):
        return "validated"
    if (folder / "failed.json").is_file():
        return "failed"
    if (folder / "model.safetensors").is_file():
        return "trained"
    return "interrupted" if (folder / "last.pt").is_file() else "new"


def check_folder(settings: Settings) -> None:
    """A folder holds one reproduction: continuing it with other settings that shape its results would mix them,
    so it is refused (more seeds, another device or progress are fine)."""
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    mine = {k: getattr(settings, k) for k in names(Settings, RESULT)}
    saved_path = out / "reproduce_settings.json"
    if saved_path.is_file():
        saved = backfilled(saved_settings(saved_path))  # a setting the folder predates: its value then
        changed = [
            f"--{k.replace('_', '-')} {mine[k]!r} (the folder's runs have {saved.get(k)!r})"
            for k in mine
            if saved.get(k) != mine[k]
        ]
        if changed:
            raise ValueError(
                f"{out} holds a reproduction with other settings: " + "; ".join(changed) + ". Use the same settings "
                "to continue it, or another --out"
            )


def saved_settings(path: Path) -> dict[str, Any]:
    """The settings a folder's runs were made with; a sentence naming the file where it does not read."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        reason = f"{type(err).__name__}: {str(err)[:80]}"
        raise ValueError(
            f"{path} does not read ({reason}): it cannot say which settings this folder's runs were made with; "
            "restore it (every run's config.json holds them), or continue in another --out"
        ) from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds a JSON {type(saved).__name__}, not the settings of a reproduction")
    return saved


def record_settings(settings: Settings, runs: list[RunSpec]) -> None:
    """Record the folder's settings once they are accepted: every dataset of the plan opens with them (a validation
    split larger than the data, a subset it cannot fill ... are refused first, and nothing is written then)."""
    from ..data.folders import ImageFolder
    from ..data.opening import open_raw

    path = Path(settings.out) / "reproduce_settings.json"
    if path.is_file():
        return
    for spec in {r.dataset: r for r in runs}.values():
        open_raw(train_config(spec, settings), ImageFolder)
    recorded = {k: getattr(settings, k) for k in names(Settings, RESULT)}
    heads = {"head_init": head_init(settings, runs)} if runs else {}  # a plan of no runs initialises nothing
    atomic_write_text(path, json.dumps({**recorded, **heads}, indent=1))


HEAD_INITS = {"paper": "N(0, 0.01)", "xavier": "by Glorot's rule", "fan-in": "for their width (fan-in)"}


def head_init(settings: Settings, runs: list[RunSpec]) -> str:
    """How the plan's runs initialise their heads' linear layers (:func:`vggnet.network.layers.init_weights`)."""
    from ..network.layers import is_paper_head

    cfg = train_config(runs[0], settings)
    if cfg.init == "xavier":
        return "xavier"
    return "paper" if is_paper_head(cfg.pool_size, cfg.fc_width) else "fan-in"


def check_head_init(settings: Settings, runs: list[RunSpec]) -> None:
    """Runs whose heads started otherwise than the folder's earlier runs did would be compared as if alike: a
    folder begun before vggnet initialised a compact head for its width (N(0, 0.01) then) is refused."""
    path = Path(settings.out) / "reproduce_settings.json"
    if not runs or not path.is_file():
        return
    saved = saved_settings(path).get("head_init") or ("xavier" if settings.init_scheme == "xavier" else "paper")
    now = head_init(settings, runs)
    if saved != now:
        raise ValueError(
            f"{settings.out}'s runs began with their heads' linear layers initialised {HEAD_INITS[saved]}; this "
            f"vggnet initialises them {HEAD_INITS[now]}, and continuing would mix the two: finish the folder with the "
            "vggnet that began it, or start another --out"
        )


def execute(settings: Settings, runs: list[RunSpec] | None = None, log: Callable[[str], Any] = print) -> dict[str, str]:
    """Train and validate every run not yet done, then test them all; returns each run's final state. A run whose
    initialisation failed is not started. Ctrl-C (or SIGTERM) at any moment stops the reproduction with what it has
    finished kept, saying how to continue."""
    return stopping(_execute, settings, runs, log)


def stopping(execute_plan: Callable[..., dict[str, str]], *args: Any) -> dict[str, str]:
    """Run a plan's executor; Ctrl-C (or SIGTERM) at any moment stops it, saying how to continue."""
    try:
        return execute_plan(*args)
    except KeyboardInterrupt as err:
        said = f"{err}; " if str(err) else ""
        raise KeyboardInterrupt(
            f"{said}every finished run is kept: run the same command again to continue (an interrupted run resumes "
            "from its last checkpoint)"
        ) from None


def accepted(settings: Settings, runs: list[RunSpec] | None) -> list[RunSpec]:
    """The plan's runs, once the settings are checked, the folder holds these settings' runs (or none) and the
    settings are recorded: what every way of running a plan does first."""
    settings.check()
    runs = plan(settings) if runs is None else runs
    check_folder(settings)
    check_head_init(settings, runs)
    record_settings(settings, runs)
    if 0 < settings.seeds_of_scales < MIN_SEEDS:
        print(
            f"note: {settings.seeds_of_scales} seed(s) of the training scales give the scale findings and the ensemble "
            f"no verdict (too few seeds: they need {MIN_SEEDS}); --scale-seeds 5 or more",
            file=sys.stderr,
        )
    return runs


def _execute(settings: Settings, runs: list[RunSpec] | None, log: Callable[[str], Any]) -> dict[str, str]:
    runs = accepted(settings, runs)
    states: dict[str, str] = {}
    for i, spec in enumerate(runs, 1):
        states[spec.name] = train_and_validate(spec, settings, states, f"[{i}/{len(runs)}] {spec.name}", log)
    chosen = chosen_on_validation(settings, runs)
    for i, spec in enumerate(runs, 1):  # the test set, once every decision's data is in
        todo = missing(spec, settings, "test", chosen) if states[spec.name] == "validated" else {}
        if todo:
            log(f"[{i}/{len(runs)}] {spec.name}: testing " + _listing(todo))
            evaluate_run(spec, settings, "test", chosen)
        if states[spec.name] == "validated":
            states[spec.name] = "tested"
    return states


def chosen_on_validation(settings: Settings, runs: list[RunSpec]) -> set[str]:
    """The models the validation split chose (each scale net's better fixed S, the ensemble's pair): with the
    jittered nets, the only ones the test set evaluates with multi-crop."""
    from .results import Results, decisions

    chosen = decisions(Results(settings, runs, splits=("val",)))  # the test set is not read to decide
    better = {c["chosen"] for c in chosen["better_fixed_s"].values() if c["chosen"]}
    return better | set(chosen["ensemble"]["pair"])


def train_and_validate(
    spec: RunSpec, settings: Settings, states: dict[str, str], tag: str, log: Callable[[str], Any]
) -> str:
    """One run's training (or resumption) and its evaluation on the validation split; its state afterwards."""
    from ..training.loop import train

    folder = Path(settings.out) / spec.name
    state = state_of(spec, settings)
    if state in ("validated", "failed"):
        log(f"{tag}: {state}, skipped")
        return state
    if spec.init_from and states.get(spec.init_from) not in ("validated", "trained"):
        log(f"{tag}: not run, its initialisation {spec.init_from} did not train")
        return "blocked"
    if state in ("new", "interrupted"):
        start = f"{spec.init}{' from ' + spec.init_from if spec.init_from else ''}, lr {spec.lr:g}"
        log(f"{tag}: {'resuming' if state == 'interrupted' else 'training'} {spec.model} ({start})")
        result = train(replace(train_config(spec, settings), resume=state == "interrupted"))
        if result.status == "interrupted":
            raise KeyboardInterrupt(f"stopped while training {spec.name}")
        if result.status != "finished":
            failure = json.dumps({"status": result.status, "message": result.message})
            atomic_write_text(folder / "failed.json", failure)
            log(f"{tag}: {result.status}: {result.message}")
            return "failed"
    log(f"{tag}: validating " + _listing(missing(spec, settings, "val")))
    evaluate_run(spec, settings, "val")
    return "validated"


def _listing(todo: dict[str, list[int]]) -> str:
    return "; ".join(f"{m} at Q = {qs}" for m, qs in todo.items())


# -- evaluation -----------------------------------------------------------------------------------------------------
def evaluate_run(spec: RunSpec, settings: Settings, split: str, chosen: set[str] | None = None) -> Path:
    """Soft-max posteriors of the run's model on ``split`` (``val``: the training images it held out; ``test``),
    per protocol and Q, kept in ``SPLIT.safetensors`` with the labels, the run's history and settings."""
    from ..base.classes import ClassMatching
    from ..base.devices import pick_device
    from ..data.opening import VAL_REMEDY
    from ..inference.loading import load_model
    from ..inference.protocols import collect

    folder = Path(settings.out) / spec.name
    loaded = load_model(folder / "model.safetensors")
    source = split_source(train_config(spec, settings), split, settings.eval_limit, loaded.model.in_channels)
    matching = ClassMatching(remedy=VAL_REMEDY)
    device = pick_device(settings.device)
    try:
        earlier = read_split(folder, split) or {"tensors": {}, "meta": {}}
    except DamagedFile as err:
        print(f"{spec.name}: {str(err).split(';')[0]}: evaluating it again", file=sys.stderr)
        earlier = {"tensors": {}, "meta": {}}
    tensors, timings = dict(earlier["tensors"]), dict(earlier["meta"].get("eval_seconds", {}))
    for method, scales in missing(spec, settings, split, chosen).items():  # only what an earlier evaluation lacks
        probs, seconds, labels = collect([loaded], source, scales, [method], loaded.crop, device, matching)
        tensors.update({f"{m}@{q}": p.contiguous() for (_, m, q), p in probs.items()})
        timings.update({f"{m}@{q}": s for (_, m, q), s in seconds.items()})
        tensors["labels"] = labels.long().contiguous()
    meta = {"eval_seconds": timings, "data": source.name, "classes": source.classes, **run_record(folder)}
    if loaded.model.has_lrn and split == "val":
        meta["lrn_ratio"] = lrn_ratio(loaded, source, device)
    return save_safetensors(tensors, folder / f"{split}.safetensors", {k: json.dumps(v) for k, v in meta.items()})


def split_source(cfg, split: str, limit: int | None, channels: int):
    """The images of a run's ``split`` as evaluation reads them (originals, one batch at a time): ``val`` the
    training images its run held out, ``test`` the data's test split."""
    from ..data.folders import ImageFolder
    from ..data.memory import InMemoryImages
    from ..data.opening import open_raw, open_test_set
    from ..data.sources import files_source, memory_source

    if split == "val":
        _, images = open_raw(cfg, ImageFolder)
    else:
        images = open_test_set(cfg, None)
    if isinstance(images, InMemoryImages):
        return memory_source(images, 256, limit, channels)
    return files_source(images.name, images.classes, images.samples[: limit or len(images)], False, channels)


def run_record(folder: Path) -> dict[str, Any]:
    """What a run did: its settings (config.json) and each epoch's learning rate and validation error."""
    from ..training.checkpoint import load_checkpoint

    history, config = [], {}
    with contextlib.suppress(ValueError):  # a checkpoint that does not read: no history to record, said below
        history = list(load_checkpoint(folder / "last.pt").get("history", []))
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((folder / "config.json").read_text())
    if not history:
        print(
            f"{folder.name}: its last.pt does not read, or is gone: its per-epoch record is left out", file=sys.stderr
        )
    keep = ("epoch", "lr", "train_loss", "train_top1_err", "val_top1_err", "seconds")
    return {
        "history": [{k: row[k] for k in keep if k in row} for row in history],
        "train_seconds": sum(row.get("seconds", 0.0) for row in history),
        "config": config,
    }


@torch.inference_mode()
def lrn_ratio(loaded, source, device: torch.device, images: int = 512) -> dict[str, float]:
    """How much the LRN layer changes its input on real images: quantiles of norm1 / relu1_1 where relu1_1 is
    positive. A constant ratio (2^-0.75 = 0.5946) would mean the layer only rescales."""
    net = loaded.model.to(device).eval()
    ratios, seen = [], 0
    for x, _ in source.batches():
        x = loaded.inputs(x.to(device), loaded.default_scale)
        taps = net.extract(x, ["relu1_1", "norm1"])
        inside = taps["relu1_1"] > 1e-3 * taps["relu1_1"].max()
        ratios.append((taps["norm1"][inside] / taps["relu1_1"][inside]).float().cpu())
        seen += len(x)
        if seen >= images:
            break
    r = torch.cat(ratios)
    q = torch.quantile(r[torch.randperm(len(r))[:100_000]], torch.tensor([0.01, 0.5, 0.99]))
    return {"min": r.min().item(), "p01": q[0].item(), "median": q[1].item(), "p99": q[2].item(), "max": r.max().item()}
