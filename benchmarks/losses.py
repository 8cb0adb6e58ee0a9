"""vggnet's perceptual and style losses against the way people write them, measured in one process, alternated.

The reference is the common hand-written form: torchvision's ``vgg16().features`` in eval mode, forward hooks on
the ReLUs that are tapped, the whole trunk run for the input and for the target, and the target through autograd
(its parameters left trainable, as torchvision builds them). A second reference does it carefully (frozen
parameters, the target under ``torch.no_grad``) but still runs the whole trunk. Figures: forward + backward of the
loss to the input, at 256 x 256, batch 4; time and the peak memory tensors took (PyTorch's profiler).

LPIPS (``--only lpips``) against the lpips package's ``LPIPS(net="vgg")`` on the same trunk weights: as a metric
(distances of image pairs, no gradients) and as a loss (forward and backward to the image, against a fixed
reference, which vggnet computes once with ``set_target``).

The reference packages (``--only references``): lpips, DISTS_pytorch and piq against vggnet's LPIPS, DISTS,
PerceptualLoss (piq's ContentLoss) and StyleLoss, all on one random torchvision VGG-16 trunk (the packages'
``vgg16(pretrained=True)`` is patched to return it: nothing is downloaded) with the packages' own calibrated
weights; a training step each (forward and backward to the image, a new target every step), time and peak memory,
the values checked equal first.

    python benchmarks/losses.py [--size 256] [--batch 4] [--repeats 3] [--only losses|lpips|references]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet import build  # noqa: E402
from vggnet.base.hardware import cpu_name  # noqa: E402
from vggnet.base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization  # noqa: E402
from vggnet.bench import measure as bench  # noqa: E402
from vggnet.losses import LPIPS, PerceptualLoss, StyleLoss, gram  # noqa: E402

TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}  # indices in torchvision's vgg16().features
PERCEPTUAL = {"relu2_2": 1.0}  # Johnson et al.'s content layer
STYLE = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}


class HookedVGG:
    """The hand-written form: torchvision's trunk with forward hooks on the tapped ReLUs."""

    def __init__(self, features: torch.nn.Module, careful: bool) -> None:
        self.features, self.careful, self.acts = features, careful, {}
        if careful:
            features.requires_grad_(False)
        for name, index in TAPS.items():
            features[index].register_forward_hook(lambda m, i, o, n=name: self.acts.__setitem__(n, o))
        self.norm = Normalization(IMAGENET_MEAN, IMAGENET_STD)

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.acts = {}
        self.features(self.norm(x))
        return self.acts

    def loss(self, x: torch.Tensor, y: torch.Tensor, layers: dict[str, float], style: bool) -> torch.Tensor:
        fx = self.taps(x)
        if self.careful:
            with torch.no_grad():
                fy = self.taps(y)
        else:
            fy = self.taps(y)
        rep = gram if style else (lambda a: a)
        return sum(w * F.mse_loss(rep(fx[n]), rep(fy[n])) for n, w in layers.items())


def step(loss_fn, x: torch.Tensor, y: torch.Tensor):
    def run() -> None:
        xi = x.clone().requires_grad_(True)
        loss_fn(xi, y).backward()

    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("losses", "lpips", "references"), default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (on a shared machine 1 is steadiest)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}", flush=True)
    if args.only in (None, "losses"):
        tap_losses(args)
    if args.only in (None, "lpips"):
        lpips_section(args)
    if args.only in (None, "references"):
        references_section(args)
    return 0


def lpips_section(args: argparse.Namespace) -> None:
    """vggnet's LPIPS and the lpips package's, on one random trunk (lpips's pnet_rand: no download)."""
    import lpips

    device = torch.device("cpu")
    theirs = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    model = build("vgg16", pool_size=1, fc_width=8)
    model.load_state_dict(
        {**model.state_dict(), **{f"features.{k.split('.', 1)[1]}": v for k, v in theirs.net.state_dict().items()}}
    )
    ours = LPIPS(model)
    x, y = (
        torch.rand(args.batch, 3, args.size, args.size) * 2 - 1,
        torch.rand(args.batch, 3, args.size, args.size) * 2 - 1,
    )
    torch.testing.assert_close(ours(x, y), theirs(x, y).detach(), rtol=0, atol=1e-5)  # the same function
    fixed = LPIPS(model)
    fixed.set_target(y[:1])

    def metric(fn):
        def run() -> None:
            with torch.no_grad():
                fn(x, y)

        return run

    sections = [
        ("LPIPS as a metric (no gradients)", {"lpips.LPIPS(net='vgg')": metric(theirs), "vggnet LPIPS": metric(ours)}),
        (
            "LPIPS as a loss (backward to the image, fixed reference)",
            {"lpips.LPIPS(net='vgg')": step(lambda a, b: theirs(a, b).sum(), x, y[:1].expand_as(x)),
             "vggnet LPIPS, set_target": step(lambda a, b: fixed(a).sum(), x, y)},
        ),
    ]  # fmt: skip
    lines = ["| LPIPS | lpips images/s | vggnet images/s | speed | memory |", "|---|---|---|---|---|"]
    for label, runs in sections:
        ref, mine = bench.alternate(runs, args.batch, device, args.repeats)
        print(bench.table([(label, [ref, mine])], bench.matmul_gflops(device)), flush=True)
        speed, memory = mine.images_per_s / ref.images_per_s, mine.peak_mib / ref.peak_mib
        lines.append(
            f"| {label} | {ref.images_per_s:.2f} | {mine.images_per_s:.2f} | {speed:.2f}x | {100 * memory:.0f}% |"
        )
    print("\n".join(lines))


def tap_losses(args: argparse.Namespace) -> None:
    import torchvision

    device = torch.device("cpu")
    reference = torchvision.models.vgg16().eval()
    ours_model = build("vgg16").eval()
    ours_model.load_state_dict(reference.state_dict())
    naive = HookedVGG(reference.features, careful=False)
    careful = HookedVGG(torchvision.models.vgg16().eval().features, careful=True)
    careful.features.load_state_dict(reference.features.state_dict())
    x, y = torch.rand(args.batch, 3, args.size, args.size), torch.rand(args.batch, 3, args.size, args.size)
    sections = []
    for label, layers, style, ours in (
        ("perceptual (relu2_2)", PERCEPTUAL, False, PerceptualLoss(ours_model, layers=PERCEPTUAL)),
        ("style (relu1_2 .. relu4_3)", STYLE, True, StyleLoss(ours_model, layers=STYLE)),
    ):
        expected = naive.loss(x, y, layers, style)
        torch.testing.assert_close(ours(x, y), expected.detach(), rtol=1e-3, atol=1e-6)  # the same function
        runs = {
            f"hooks on torchvision, target through autograd: {label}": step(
                lambda a, b, L=layers, s=style: naive.loss(a, b, L, s), x, y
            ),
            f"hooks on torchvision, frozen, target no_grad: {label}": step(
                lambda a, b, L=layers, s=style: careful.loss(a, b, L, s), x, y
            ),
            f"vggnet {type(ours).__name__}: {label}": step(ours, x, y),
        }
        figures = bench.alternate(runs, args.batch, device, args.repeats)
        sections.append((label, figures))
        print(bench.table([sections[-1]], bench.matmul_gflops(device)), flush=True)
    print()
    lines = ["| loss, forward + backward | reference | time ratio | memory ratio |", "|---|---|---|---|"]
    for label, (naive_f, careful_f, ours_f) in sections:
        for name, ref in (("target through autograd", naive_f), ("frozen, target no_grad", careful_f)):
            speed = ours_f.images_per_s / ref.images_per_s
            memory = ours_f.peak_mib / ref.peak_mib
            lines.append(f"| {label} | {name} | {speed:.2f}x faster | {100 * memory:.0f}% of the memory |")
    print("\n".join(lines))


def shared_trunk() -> torch.nn.Module:
    """One random torchvision VGG-16, which the packages' ``vgg16(pretrained=True)`` returns (a copy each time)."""
    import copy

    import torchvision

    torch.manual_seed(0)
    trunk = torchvision.models.vgg16(weights=None).eval()

    def build_stub(*args, **kwargs):
        return copy.deepcopy(trunk)

    torchvision.models.vgg16 = build_stub
    torchvision.models.vgg.vgg16 = build_stub
    import piq.perceptual

    piq.perceptual.vgg16 = build_stub
    return trunk


def reference_metrics(model, x, y, device: torch.device) -> list[tuple[str, dict]]:
    """Per metric, the steps of each package and of vggnet on the same trunk, after checking their values agree."""
    import DISTS_pytorch
    import lpips
    import piq

    from vggnet.losses import DISTS, lpips_layers

    ours_dists = DISTS(model).to(device)
    lins = [w.view(1, -1, 1, 1) for w in lpips_layers().values()]
    alpha_beta = torch.load(ours_dists.source_of_weights, weights_only=True)
    torch.hub.load_state_dict_from_url = lambda url, **k: lins if "lpips" in url else alpha_beta  # piq's weights
    style_layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    their_lpips, their_dists = lpips.LPIPS(net="vgg", verbose=False).to(device), DISTS_pytorch.DISTS().to(device)
    content = PerceptualLoss(model, layers=["relu3_3"], channel_reduction="sum", reduction="none").to(device)
    pairs = {
        "LPIPS": (
            {"lpips.LPIPS(net='vgg')": lambda a, b: their_lpips(a, b, normalize=True),
             "piq.LPIPS": piq.LPIPS(reduction="none")},
            {"vggnet LPIPS": LPIPS(model, input_range=(0, 1)),
             "vggnet LPIPS, checkpoint=True": LPIPS(model, input_range=(0, 1), checkpoint=True)},
        ),
        "DISTS": (
            {"DISTS_pytorch.DISTS": lambda a, b: their_dists(a, b, require_grad=True),
             "piq.DISTS": piq.DISTS(reduction="none")},
            {"vggnet DISTS": ours_dists},
        ),
        "content (relu3_3)": (
            {"piq.ContentLoss": piq.ContentLoss(reduction="none")},
            {"vggnet PerceptualLoss": content},
        ),
        "style (relu1_2 .. relu4_3)": (
            {"piq.StyleLoss": piq.StyleLoss(layers=style_layers, weights=[1.0] * 4, reduction="none")},
            {"vggnet StyleLoss": StyleLoss(model, layers=style_layers, gram="none", reduction="none")},
        ),
    }  # fmt: skip
    out = []
    for label, (theirs, ours) in pairs.items():
        for fn in (*theirs.values(), *ours.values()):
            if isinstance(fn, torch.nn.Module):
                fn.to(device)
        reference = next(iter(theirs.values()))(x, y).detach().flatten()
        for fn in (*theirs.values(), *ours.values()):
            got = fn(x, y).detach().flatten()
            torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-6)  # one function, on one trunk
        runs = {name: step(lambda a, b, f=fn: f(a, b).sum(), x, y) for name, fn in {**theirs, **ours}.items()}
        out.append((label, runs))
    return out


def wall_and_cpu(runs: dict, repeats: int, device: torch.device) -> dict[str, tuple[float, float, float, float]]:
    """Per run: the median and the least wall seconds of a step, its median process CPU seconds (the runs taking
    turns ``repeats`` times after a warm-up; with one thread CPU time is what other processes on a shared machine
    disturb least, with more it counts threads spinning at barriers) and its peak MiB."""
    import statistics
    import time

    from vggnet.base.timing import synchronize

    peaks = {}
    for name, fn in runs.items():
        fn()
        with bench.PeakMemory(device) as mem:
            fn()
        peaks[name] = mem.peak
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            synchronize(device)
            w, c = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {n: (statistics.median(wall[n]), min(wall[n]), statistics.median(cpu[n]), peaks[n]) for n in runs}


def references_section(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    trunk = shared_trunk()
    model = build("vgg16", pool_size=1, fc_width=8)
    model.load_state_dict(
        {**model.state_dict(), **{f"features.{k}": v for k, v in trunk.features.state_dict().items()}}
    )
    torch.manual_seed(1)
    x, y = (torch.rand(args.batch, 3, args.size, args.size, device=device) for _ in range(2))
    lines = [
        f"| metric ({args.size} x {args.size}, batch {args.batch}, {torch.get_num_threads()} threads) | run | wall ms "
        "(median, least) | CPU s | peak MiB | vggnet's speed | vggnet's memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in reference_metrics(model.to(device), x, y, device):
        figures = wall_and_cpu(runs, args.repeats, device)
        ours_wall, _, _, ours_mib = next(v for n, v in figures.items() if n.startswith("vggnet"))
        for name, (wall, least, cpu, mib) in figures.items():
            mine = name.startswith("vggnet")
            ratio = "" if mine else f"{wall / ours_wall:.2f}x"
            memory = "" if mine else f"{100 * ours_mib / mib:.0f}%"
            lines.append(
                f"| {label} | {name} | {1000 * wall:.0f}, {1000 * least:.0f} | {cpu:.2f} | {mib:.0f} | {ratio} | "
                f"{memory} |"
            )
        print("\n".join(lines[-len(figures) :]), flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
