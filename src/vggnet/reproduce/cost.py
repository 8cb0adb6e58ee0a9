"""What a reproduction will cost and produce, before it runs (``vggnet reproduce --plan``): every run with its
starting point, scales and protocols, its estimated minutes from a few timed training steps, the tables it will
write and the data each decision is taken on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

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
    from ..model import build

    device = pick_device(settings.device)
    cost = Cost(val_images=settings.val_split)
    for spec in {r.dataset: r for r in plan(replace(settings, seeds=1))}.values():
        cfg = train_config(spec, settings)
        train_set, _ = open_raw(cfg, ImageFolder)
        cost.images[spec.dataset] = len(train_set)
        cost.test_images[spec.dataset] = min(len(open_test_set(cfg, train_set.classes)), settings.eval_limit or 10**9)
    cfg = train_config(plan(replace(settings, seeds=1))[0], settings)
    for letter in LETTERS:
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
        "| run | data | S (paper's) | starts from | lr | epochs | test Q (paper's) | protocols (test) | est. min |",
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
            est = f"{seconds / 60:.1f}"
        protocols = ", ".join(wanted(spec, settings, "test"))
        lines.append(
            f"| {spec.name} | {spec.dataset} | {geo.label(spec.kind)} | {start} | {spec.lr:g} | "
            f"{spec.epochs} | {qs} | {protocols} | {est} |"
        )
    if cost is not None:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in cost.train_images_per_s.items())
        lines += ["", f"estimated total: {total / 60:.0f} min (measured training images/s: {rates})"]
        minutes = {r.name: sum(estimate_seconds(r, settings, cost)) / 60 for r in runs}
        lines += schedule_lines(runs, minutes)
    return "\n".join(lines + ["", *outputs(settings)])


def outputs(settings: Settings) -> list[str]:
    """The tables a reproduction writes, and the data each of its decisions is taken on."""
    breaks = Geometry(settings.crop).dense_breaks(Geometry(settings.crop).q_multi("jitter"))
    family = judged_by(settings, "scales" if settings.separate_scale_runs else "nets")
    judged = {"dense": "dense", "multicrop": "multi-crop (5 x 5 x 2), test set only", "center": "centre crop"}[family]
    dense = f"dense: not testable here ({breaks})" if breaks else "dense and multi-crop"
    return [
        "Tables (reproduce.md, reproduce.json, reproduce.png), all errors on the test set:",
        f"- Table 3, the nets A, A-LRN, B, C, D, E at the small S ({settings.main_data})",
        f"- Table 3, the training scales of {', '.join(settings.scale_nets)} ({settings.scale_data})",
        "- Table 4, multi-scale testing: one Q against three",
        f"- Table 5, D and E at jittered S: multi-crop; {dense}",
        "- Table 6, the ensemble of the two best nets, and its better member",
        "- the paper's findings: effect, 95 % interval, smallest detectable effect, verdict; the deviations from the "
        "paper; each run's per-epoch validation error and learning rate",
        "",
        f"Decisions, each on the {settings.val_split:,} training images a seed's runs hold out (never the test set), "
        "on the cheapest protocol that answers them:",
        "- the plateau schedule: each run's validation error, every epoch",
        "- the better fixed S of each scale net (against which jittering is judged): validation error, centre crop",
        "- the ensemble's pair and its better member: validation error, centre crop",
        f"The scale findings and the ensemble are judged on {judged}.",
    ]


# -- planning for power ---------------------------------------------------------------------------------------------
def folder_settings(folder: str) -> Settings:
    """The settings of the reproduction in ``folder``, with as many seeds of each group as its runs hold."""
    import json
    import re
    from pathlib import Path

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


def power_plan(folder: str) -> str:
    """``vggnet reproduce --plan --power FOLDER``: per finding, the seeds that 80 % power at the paper's effect
    needs with the folder's per-seed spreads, and what a seed of its runs costs on this machine; then the plan that
    gives each group of findings (the nets, the training scales) the seeds its findings need, and its cost."""
    from .findings import findings
    from .record import lineage
    from .results import Results, decisions

    settings = folder_settings(folder)
    runs = plan(settings)
    results = Results(settings, runs)
    found = findings(results, decisions(results))
    cost = measure_cost(settings)
    lines = [
        f"{folder}: {settings.seeds} seed(s) of the nets, {settings.seeds_of_scales} of the training scales. Seeds for "
        "80 % power at the paper's effect with its per-seed spreads, and their cost on this machine:",
        "",
        "| finding | group | seeds there | power there | seeds for 80 % | min per seed here | hours here |",
        "|---|---|---|---|---|---|---|",
    ]
    wanted_seeds: dict[str, int] = {"nets": settings.seeds, "scales": settings.seeds_of_scales}
    first = {r.model: r for r in runs if r.seed == 0}
    for f in found:
        models = [m for m in (*f.a.split(" + "), f.b) if m in first]
        lineage_models = dict.fromkeys(x for m in models for x in lineage(results, m))
        minutes = sum(sum(estimate_seconds(first[m], settings, cost)) for m in lineage_models if m in first) / 60
        group = first[models[0]].group if models else "nets"
        need = f.seeds_for_power
        if need and need <= 100:
            wanted_seeds[group] = max(wanted_seeds[group], need)
        power = f"{100 * f.power_at_paper:.0f} %" if f.power_at_paper is not None else "—"
        needed = str(need) if need else ("more than 1000" if f.power_at_paper is not None else "—")
        hours = f"{need * minutes / 60:.1f}" if need and minutes else "—"
        shown = f"{minutes:.1f}" if minutes else "—"
        lines.append(f"| {f.claim} | {group} | {f.seeds} | {power} | {needed} | {shown} | {hours} |")
    seeds, scale_seeds = wanted_seeds["nets"], wanted_seeds["scales"]
    bigger = replace(settings, seeds=seeds, scale_seeds=scale_seeds)
    total = sum(sum(estimate_seconds(r, bigger, cost)) for r in plan(bigger)) / 3600
    return "\n".join(
        lines
        + [
            "",
            f"A plan that gives each group the seeds its reachable findings need (at most 100): --seeds {seeds} "
            f"--scale-seeds {scale_seeds}, {len(plan(bigger))} runs, about {total:.1f} hours here, one run at a "
            f"time (the folder keeps its runs: continue it with these flags).",
        ]
    )
