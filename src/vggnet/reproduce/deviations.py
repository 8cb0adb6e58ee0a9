"""Every way a reproduction differs from the paper (the report's deviations table), from its settings and its runs'
own records."""

from __future__ import annotations

import statistics

from .plan import Settings
from .results import Results

PAPER_STALLS = (
    "deep nets from N(0, 0.01) stalled, so B-E were pre-initialised from net A (the rest N(0, 0.01)); Glorot's "
    "initialisation trains them without pre-training (the footnote)"
)


def initialisation(s: Settings) -> str:
    if s.batch_norm:
        return f"{s.init_scheme}, every net from scratch"
    rest = s.rest_scheme
    why = ": std sqrt(2 / fan-in), which keeps the signal's scale through the random layers between A's"
    why = why if rest == "he" else ""
    return f"net A {s.init_scheme}; B-E: A's layers, the rest {rest}{why}"


def budgets(s: Settings) -> str:
    cap = s.first_rate_cap
    first = f"its first rate at most {cap} of them" if cap else f"its first rate until the last {s.final_epochs}"
    stages = "" if s.batch_norm else f"; {s.stage_epochs} for the large-S and jittered stages"
    stall = f"; {s.stall_epochs} for every run of the stall test" if s.stall_test and not s.batch_norm else ""
    return f"at most {s.epochs} for a run from scratch or from net A ({first}){stages}{stall}"


def stall_test(s: Settings) -> str:
    if not s.stall_test:
        return (
            f"{', '.join(s.scratch_nets)} from {s.init_scheme} at the nets' budget, the rate cut by the plateau rule "
            "while at chance, against the nets from A"
        )
    return (
        f"{', '.join(s.scratch_nets)} from N(0, 0.01), from net A's layers with the rest at N(0, 0.01), and from "
        f"{s.init_scheme}, each {s.stall_epochs} epochs (the arm from A also inherits net A's training), the rate "
        "held while at chance; net A from N(0, 0.01) as a control"
    )


def deviations(results: Results) -> list[dict[str, str]]:
    """Every way this reproduction differs from the paper, from the settings and the runs' own records."""
    s, geo = results.settings, results.geometry
    grey = s.main_data in ("fashion-mnist", "fashion-mnist-scaled")
    rows = [
        (
            "data, nets' findings",
            "ILSVRC-2012: 1.28 M training images, 50 k validation (its test)",
            f"{s.main_data}: {f'a balanced subset of {s.subset:,}' if s.subset else 'its'} training images (less "
            f"{s.val_split:,} held out for decisions); its test set",
        ),
        ("data, scale findings", "the same", s.scale_data),
        (
            "crop, widths",
            "224; 64-512 channels, fc 4096",
            f"{s.crop} ({geo.paper(s.crop)}); width x{s.width:g}, fc {s.head_width}",
        ),
        ("maps of blocks 3-5", "56, 28, 14 pixels", ", ".join(map(str, geo.block_sizes()[2:])) + " pixels"),
        (
            "1x1 against 3x3 (C against D)",
            "tested",
            f"not testable: {b}" if (b := geo.one_by_one_breaks()) else "tested",
        ),
        (
            "colour shift",
            "AlexNet's PCA colour shift",
            "none: grey images, one channel" if grey else "AlexNet's PCA colour shift (std 0.1)",
        ),
        ("initialisation", "net A N(0, 0.01); B-E: A's layers, the rest N(0, 0.01)", initialisation(s)),
    ]
    return [{"what": w, "paper": p, "here": h} for w, p, h in rows + procedure(results)]


def procedure(results: Results) -> list[tuple[str, str, str]]:
    """The deviations in how the nets were trained, decided on and evaluated."""
    s = results.settings
    epochs_a = [len(results.history(r.name)) for r in results.specs("A_256") if results.history(r.name)]
    rows = [
        ("batch", "256", str(s.batch_size)),
        ("epochs", "74", budgets(s)),
        (
            "warm-up",
            "none",
            f"the rate rises linearly from a tenth over the first {s.warmup_epochs:g} epoch(s) of every run that "
            "starts at the full rate"
            if s.warmup_epochs
            else "none",
        ),
        (
            "schedule",
            "the rate divided by 10 at plateaus of the validation accuracy, three times",
            f"the rate divided by 10 after {s.patience} epoch(s) without improvement; a run ends at the plateau "
            f"after its division number {s.decays}, or at its budget, and one whose rate was never divided ends with "
            f"{s.final_epochs} epochs at a tenth"
            + (
                "; an epoch at chance does not count, so a run that has not left chance keeps its rate"
                if s.hold_at_chance
                else ""
            ),
        ),
        *([] if s.batch_norm else [("stalls from random weights", PAPER_STALLS, stall_test(s))]),
        (
            "epochs B-E inherit",
            "those of net A (pre-initialised from it)",
            f"{statistics.mean(epochs_a):.1f} of net A's (the mean), through its copied layers"
            if epochs_a and not s.batch_norm
            else "none (BN nets from scratch)"
            if s.batch_norm
            else "net A's",
        ),
        (
            "decisions (plateau, S, ensemble)",
            "ILSVRC's validation set, also reported on",
            f"{s.val_split:,} held-out training images, centre crop; test set only reported",
        ),
        ("scale nets", "C, D, E", ", ".join(s.scale_nets)),
        ("seeds", "one net of each", f"{s.seeds} of the nets, {s.seeds_of_scales} of the training scales"),
        ("batch normalisation", "none", "after every convolution, every net from scratch" if s.batch_norm else "none"),
    ]
    breaks = results.dense_breaks("A_256")
    return rows + [
        ("dense evaluation", "the crop is 7 strides", f"not testable: {breaks}" if breaks else "as the paper")
    ]
