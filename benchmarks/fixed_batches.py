"""OpenVINO with a fixed batch against the dynamic model, at the batch sizes ``vggnet serve`` compiles copies for
(``--fixed-batches``): for the main job's net and VGG-16 at 224 (random weights: speed does not depend on them),
float32, exported as ``vggnet export`` does, with vggnet's PyTorch model as the reference. The three take turns
in one process; the median of the rounds. The last column is what ``--fixed-batches auto`` would keep here.

    python benchmarks/fixed_batches.py [--max-batch 16] [--rounds 7] [--only main]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet.base.hardware import cpu_signature  # noqa: E402
from vggnet.base.timing import take_turns  # noqa: E402
from vggnet.bench.engines import exported, models  # noqa: E402
from vggnet.engines.fixed import MARGIN, batch_sizes  # noqa: E402
from vggnet.engines.openvino_engine import OpenVinoModel  # noqa: E402
from vggnet.inference.folding import prepare  # noqa: E402


def rates_at(dynamic: OpenVinoModel, net: torch.nn.Module, shape: tuple[int, ...], rounds: int) -> dict[str, float]:
    """Images/s of PyTorch, the dynamic model and a copy compiled for ``shape``, taking turns on one batch."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    fixed = dynamic.compile_fixed(shape).create_infer_request()

    def pytorch() -> None:
        with torch.inference_mode():
            net(xt)

    runs = {"pytorch": pytorch, "dynamic": lambda: dynamic.request.infer({0: x}), "fixed": lambda: fixed.infer({0: x})}
    return take_turns(runs, shape[0], rounds, least=0.3)


def rows_for(label: str, loaded, side: int, work: Path, sizes: list[int], rounds: int) -> None:
    """One row per batch size: ms per batch of PyTorch, the dynamic model and its fixed copy, and the ratios."""
    dynamic = OpenVinoModel(exported(loaded, work)["float32"])
    net = prepare(loaded.model)
    for n in sizes:
        rate = rates_at(dynamic, net, (n, loaded.model.in_channels, side, side), rounds)
        ms = {k: 1000 * n / v for k, v in rate.items()}
        speedup = rate["fixed"] / rate["dynamic"]
        print(
            f"| {label} | {n} | {ms['pytorch']:.2f} | {ms['dynamic']:.2f} | {ms['fixed']:.2f} | {speedup:.2f}x | "
            f"{rate['fixed'] / rate['pytorch']:.2f}x | {'fixed' if speedup >= MARGIN else 'dynamic'} |",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", choices=("main", "vgg16"), help="measure one of the two models")
    args = p.parse_args()
    print(f"CPU: {cpu_signature()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| model | batch | PyTorch ms | OpenVINO dynamic ms | OpenVINO fixed ms | fixed / dynamic | fixed / PyTorch "
        f"| auto keeps (>= {MARGIN}x) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (loaded, side) in models().items():
            if args.only and (args.only == "vgg16") != label.startswith("VGG-16"):
                continue
            sizes = batch_sizes(args.max_batch)
            if label.startswith("VGG-16"):
                sizes = [n for n in sizes if n <= 4]  # seconds a batch past 4 on a 2-core CPU
            rows_for(label, loaded, side, Path(tmp) / label.split()[0], sizes, args.rounds)


if __name__ == "__main__":
    main()
