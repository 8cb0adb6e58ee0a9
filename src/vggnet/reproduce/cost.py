"""What a reproduction will cost and produce, before it runs (``vggnet reproduce --plan``): every run with its
starting point, scales and protocols, its estimated minutes from a few timed training steps, the tables it will
write and the data each decision is taken on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..base.progress import duration, say, track
from .geometry import Geometry
from .plan import LETTERS, NAMES, RunSpec, Settings, judged_by, plan, train_config, wanted
from .schedule import schedule_lines


@dataclass
class Cost:
    train_images_per_s: dict[str, float] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)  # training images, by dataset
    val_images: int = 0
    test_images: dict[str, int] = field(default_factory=dict)


def measure_cost(settings: Settings) -> Cost:
    """Training images/s of each configuration at the plan's size, from a few timed steps (seconds, not a run), and
    the data's sizes: enough to cost the plan."""
    from ..base.devices import pick_device
    from ..data.folders import ImageFolder
    from ..data.opening import open_raw, open_test_set
    from ..network.model import build

    device = pick_device(settings.device)
    say("timing a few training steps of each net here, to cost the plan (seconds)")
    cost = Cost(val_images=settings.val_split)
    for spec in {r.dataset: r for r in plan(replace(settings, seeds=1))}.values():
        cfg = train_config(spec, settings)
        train_set, _ = open_raw(cfg, ImageFolder)
        cost.images[spec.dataset] = len(train_set)
        cost.test_images[spec.dataset] = min(len(open_test_set(cfg, train_set.classes)), settings.eval_limit or 10**9)
    cfg = train_config(plan(replace(settings, seeds=1))[0], settings)
    for letter in track(LETTERS, desc="timing the nets", unit="net"):
        model = build(
            NAMES[letter],
            batch_norm=settings.batch_norm,
            width=settings.width,
            ceil_mode=True,
            in_channels=train_set.channels,
            num_classes=len(train_set.classes),
            pool_size=cfg.pool_size,
            fc_width=settings.head_width,
        ).to(device)
        cost.train_images_per_s[letter] = _step_rate(model, settings.crop, train_set.channels, device, 64)
    return cost


def _step_rate(model: torch.nn.Module, crop: int, channels: int, device: torch.device, batch: int = 64) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, channels, crop, crop, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.num_classes, (batch,), device=device)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return batch / min(times[1:])


def estimate_seconds(spec: RunSpec, settings: Settings, cost: Cost) -> tuple[float, float]:
    """(training, evaluation) seconds of a run: its images over the measured training rate (validating each epoch);
    evaluation as forward passes (a third of a training step) of every crop the protocols take on both splits."""
    rate = cost.train_images_per_s[spec.letter]
    train_s = spec.epochs * (cost.images[spec.dataset] + cost.val_images / 3) / rate
    crops = 0.0
    for split, images in (("val", cost.val_images), ("test", cost.test_images[spec.dataset])):
        for method, qs in wanted(spec, settings, split).items():
            per = {"center": 1, "multicrop": 50}.get(method)
            crops += images * sum(per or 2 * (q / spec.q_single) ** 2 for q in qs)
    return train_s, crops / (3 * rate)


def plan_table(settings: Settings, runs: list[RunSpec], cost: Cost | None = None) -> str:
    """The plan: each run, where it starts from, its scales in the miniature's and the paper's units, its protocols
    and estimated minutes; then the tables the reproduction writes and what each decision is taken on."""
    geo = Geometry(settings.crop)
    lines = [
        f"{len(runs)} runs in {settings.out} ({settings.seeds} seeds of the nets, {settings.seeds_of_scales} of the "
        f"scales); crop {settings.crop} (the paper's 224), width "
        f"x{settings.width:g}, fc {settings.head_width}, "
        + ("BN, every net from scratch" if settings.batch_norm else "no BN, the paper's procedure"),
        "",
        "| run | data | S (paper's) | starts from | lr | epochs | test Q (paper's) | protocols (test) | est. time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for spec in runs:
        qs = ", ".join(f"{q} ({geo.paper(q)})" for q in spec.qs)
        start = {
            "random": "random",
            "preinit": f"net A's layers of {spec.init_from}",
            "finetune": f"all of {spec.init_from}",
        }[spec.init]
        est = "-"
        if cost is not None:
            seconds = sum(estimate_seconds(spec, settings, cost))
            total += seconds
            est = duration(seconds)
        protocols = ", ".join(wanted(spec, settings, "test"))
        lines.append(
            f"| {spec.name} | {spec.dataset} | {geo.label(spec.kind)} | {start} | {spec.lr:g} | "
            f"{spec.epochs} | {qs} | {protocols} | {est} |"
        )
    if cost is not None:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in cost.train_images_per_s.items())
        lines += ["", f"estimated total: {duration(total)} (measured training images/s: {rates})"]
        minutes = {r.name: sum(estimate_seconds(r, settings, cost)) / 60 for r in runs}
        lines += schedule_lines(runs, minutes)
    return "\n".join(lines + ["", *outputs(settings, runs)])


def outputs(settings: Settings, runs: list[RunSpec]) -> list[str]:
    """The tables a reproduction of ``runs`` writes (only those its runs fill), and the data each of its decisions
    is taken on."""
    geo = Geometry(settings.crop)
    breaks = geo.dense_breaks(geo.q_multi("jitter"))
    family = judged_by(settings, "scales" if settings.separate_scale_runs else "nets")
    judged = {"dense": "dense", "multicrop": "multi-crop (5 x 5 x 2), test set only", "center": "centre crop"}[family]
    dense = f"dense: not testable here ({breaks})" if breaks else "dense and multi-crop"
    tables = produced_tables(settings, runs, dense)
    decided = ["- the plateau schedule: each run's validation error, every epoch"]
    if any(line.startswith("- Table 3, the training scales") for line in tables):
        decided.append(
            "- the better fixed S of each scale net (against which jittering is judged): validation error, centre crop"
        )
    if any(line.startswith("- Table 6") for line in tables):
        decided.append("- the ensemble's pair and its better member: validation error, centre crop")
    return [
        "Tables (reproduce.md, reproduce.json, reproduce.png), all errors on the test set:",
        *tables,
        "- the paper's findings its runs can judge: effect, 95 % interval, smallest detectable effect, verdict; the "
        "deviations from the paper; each run's per-epoch validation error and learning rate",
        "",
        f"Decisions, each on the {settings.val_split:,} training images a seed's runs hold out (never the test set), "
        "on the cheapest protocol that answers them:",
        *decided,
        f"The scale findings and the ensemble are judged on {judged}." if len(decided) > 1 else "",
    ]


def produced_tables(settings: Settings, runs: list[RunSpec], dense: str) -> list[str]:
    """A line for each of Tables 3-6 that ``runs`` fill, and one naming those they leave empty (and why)."""
    nets = [x for x in LETTERS if any(r.letter == x and r.kind == "256" and r.group == "nets" for r in runs)]
    scaled = sorted({r.letter for r in runs if r.kind != "256"}, key=LETTERS.index)
    crops = sorted({r.letter for r in runs if r.multicrop}, key=LETTERS.index)
    # the ensemble's candidates (results.decisions): C, D, E trained at more than the small S of the nets' data
    candidates = [r for r in runs if r.letter in "CDE" and (r.group == "scales" or r.kind != "256")]
    found, missing = [], []
    if nets:
        found.append(f"- Table 3, the nets {', '.join(nets)} at the small S ({settings.main_data})")
    if scaled:
        found.append(f"- Table 3, the training scales of {', '.join(scaled)} ({settings.scale_data})")
        found.append("- Table 4, multi-scale testing: one Q against three")
    else:
        missing.append("Table 3's training scales, Tables 4 and 5 (no training-scale runs: --scale-seeds 0)")
    if crops:
        found.append(f"- Table 5, {' and '.join(crops)} at jittered S: multi-crop; {dense}")
    elif scaled:
        missing.append("Table 5 (its nets D and E are not among --scale-nets)")
    if len({r.model for r in candidates}) >= 2 and len({r.seed for r in candidates}) >= 2:
        found.append("- Table 6, the ensemble of the two best nets, and its better member")
    else:
        missing.append("Table 6 (its ensemble takes two scale nets' models, each from another seed: two seeds of them)")
    if missing:
        found.append("- not in this plan: " + "; ".join(missing))
    return found


# -- planning for power ---------------------------------------------------------------------------------------------
def folder_settings(folder: str) -> Settings:
    """The settings of the reproduction in ``folder``, with as many seeds of each group as its runs hold."""
    import json
    import re

    path = Path(folder) / "reproduce_settings.json"
    if not path.is_file():
        raise ValueError(
            f"{folder} holds no reproduction (no reproduce_settings.json): give a folder of vggnet reproduce"
        )
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is damaged ({err}); it cannot say what the reproduction ran") from None
    from .recorded import backfilled

    known = backfilled({k: v for k, v in saved.items() if k in Settings.__dataclass_fields__})
    names = [p.name for p in Path(folder).iterdir() if p.is_dir()]
    seeds = [int(m.group(2)) for n in names if (m := re.match(r"(.*)_seed(\d+)$", n))]
    scale_seeds = [int(m.group(2)) for n in names if (m := re.match(r".*_(384|jitter).*_seed(\d+)$", n))]
    return Settings(
        **known,
        seeds=max(seeds, default=0) + 1,
        scale_seeds=max(scale_seeds, default=-1) + 1,
        out=folder,
        progress=False,
    )


def power_source(source: str) -> tuple[Settings, list[dict]]:
    """The settings and findings (claim, models a and b, seeds, power at the paper's effect, seeds for 80 %) of a
    reproduction's folder, computed from its runs, or of a published report (``reproduce.json``), as it records
    them: a newcomer can plan for power from the reports vggnet ships (docs/reproduce.json) before running anything."""
    import json

    keys = ("claim", "a", "b", "seeds", "power_at_paper", "seeds_for_power")
    path = Path(source)
    if path.is_file():
        try:
            report = json.loads(path.read_text())
            saved, found = report["settings"], [{k: f.get(k) for k in keys} for f in report["findings"]]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(
                f"{source} is not a reproduction's report (reproduce.json: settings and findings): {err}"
            ) from None
        known = {k: v for k, v in saved.items() if k in Settings.__dataclass_fields__}
        return Settings(**{**known, "out": str(path.parent), "progress": False}), found
    if not path.is_dir():
        raise ValueError(f"--power {source}: give a reproduction's folder or its report (reproduce.json)")
    from .findings import findings
    from .results import Results, decisions

    settings = folder_settings(source)
    results = Results(settings, plan(settings))
    return settings, [{k: getattr(f, k) for k in keys} for f in findings(results, decisions(results))]


def _lineage(first: dict[str, RunSpec], model: str) -> list[str]:
    """The models a model's runs need, itself included: the nets it starts from, back to random weights."""
    spec = first.get(model)
    if spec is None:
        return []
    return [*(_lineage(first, spec.init_from.rsplit("_seed", 1)[0]) if spec.init_from else []), model]


def power_plan(source: str) -> str:
    """``vggnet reproduce --plan --power FOLDER`` (or a report, ``reproduce.json``): per finding, the seeds that 80 %
    power at the paper's effect needs with the per-seed spreads found, and what a seed of its runs costs on this
    machine; then the plan that gives each group of findings (the nets, the training scales) the seeds its findings
    need, and its cost."""
    settings, found = power_source(source)
    runs = plan(settings)
    cost = measure_cost(settings)
    lines = [
        f"{source}: {settings.seeds} seed(s) of the nets, {settings.seeds_of_scales} of the training scales. Seeds for "
        "80 % power at the paper's effect with its per-seed spreads, and their cost on this machine:",
        "",
        "| finding | group | seeds there | power there | seeds for 80 % | time per seed here | time for them here |",
        "|---|---|---|---|---|---|---|",
    ]
    wanted_seeds: dict[str, int] = {"nets": settings.seeds, "scales": settings.seeds_of_scales}
    first = {r.model: r for r in runs if r.seed == 0}
    for f in found:
        models = [m for m in (*str(f["a"]).split(" + "), f["b"]) if m in first]
        chain = dict.fromkeys(x for m in models for x in _lineage(first, m))
        seconds = sum(sum(estimate_seconds(first[m], settings, cost)) for m in chain)
        group = first[models[0]].group if models else "nets"
        need, power = f["seeds_for_power"], f["power_at_paper"]
        if need and need <= 100:
            wanted_seeds[group] = max(wanted_seeds[group], need)
        shown = f"{100 * power:.0f} %" if power is not None else "—"
        needed = str(need) if need else ("more than 1000" if power is not None else "—")
        total = duration(need * seconds) if need and seconds else "—"
        each = duration(seconds) if seconds else "—"
        lines.append(f"| {f['claim']} | {group} | {f['seeds']} | {shown} | {needed} | {each} | {total} |")
    seeds, scale_seeds = wanted_seeds["nets"], wanted_seeds["scales"]
    bigger = replace(settings, seeds=seeds, scale_seeds=scale_seeds)
    total = sum(sum(estimate_seconds(r, bigger, cost)) for r in plan(bigger))
    keeps = "the folder keeps its runs: continue it" if Path(source).is_dir() else "run it"
    return "\n".join(
        lines
        + [
            "",
            f"A plan that gives each group the seeds its reachable findings need (at most 100): --seeds {seeds} "
            f"--scale-seeds {scale_seeds}, {len(plan(bigger))} runs, about {duration(total)} here, one run at a "
            f"time ({keeps} with these flags).",
        ]
    )
