"""The ``vggnet`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys


def cmd_info(args: argparse.Namespace) -> int:
    from .info import family_report, layer_report
    from .model import build

    if args.arch is None:
        print(family_report(args.size))
    else:
        model = build(args.arch, num_classes=args.num_classes)
        print(layer_report(model, args.size))
    return 0


TRAIN_HELP = {
    "arch": "architecture: vgg11 ... vgg19_bn, vgg11_lrn, vgg16_conv1 or a paper letter (default vgg11, net A)",
    "width": "multiplier on every convolution's width, for small experiments (default 1)",
    "pool_size": "side of the average pool before fc6: 7 as in the paper, 1 for a compact head on small images",
    "fc_width": "width of fc6 and fc7 (default 4096)",
    "dropout": "dropout after fc6 and fc7 (default 0.5)",
    "init": "initialisation: normal (the paper's, std 0.01), xavier (Glorot) or kaiming (torchvision's)",
    "preinit": "weights or checkpoint of a trained net A: copy its first four convolutions and three FC layers",
    "weights": "start from these weights (fine-tuning): a file, URL or 'torchvision'",
    "dataset": "fashion-mnist, folder (DIR/train/<class>/*, DIR/val/<class>/*) or synthetic (default: from --data)",
    "data": "data folder: an ImageNet-style folder, or where Fashion-MNIST's idx files are",
    "subset": "train on a balanced subset of this many images (fashion-mnist, synthetic)",
    "scale": "training scale S (smallest side after rescaling): one value, or Smin Smax for scale jittering",
    "crop": "side of the random training crop (default 224)",
    "colour_shift": "std of AlexNet's PCA colour shift (default 0.1; 0 turns it off)",
    "eigen": "colour-shift eigen-decomposition: imagenet (AlexNet's) or dataset (computed from training images)",
    "normalize": "mean (subtract the training set's mean RGB, the paper's), meanstd, or imagenet (torchvision's)",
    "strict": "stop at the first bad image instead of skipping it with a warning",
    "workers": "DataLoader worker processes for image folders (default: cores - 1, at most 8)",
    "epochs": "maximum number of epochs (default 74, the paper's)",
    "batch_size": "global batch size over all processes (default 256, the paper's)",
    "micro_batch": "largest batch held in memory per process; gradients are accumulated up to --batch-size",
    "lr": "initial learning rate (default 0.01)",
    "momentum": "SGD momentum (default 0.9)",
    "nesterov": "use Nesterov momentum",
    "weight_decay": "L2 weight decay (default 5e-4)",
    "label_smoothing": "label smoothing of the cross-entropy (default 0, the paper's)",
    "schedule": "plateau (divide the rate by 10 when validation accuracy stops improving, the paper's) or onecycle",
    "patience": "plateau: epochs without improvement before the rate is divided by 10 (default 2)",
    "max_decays": "plateau: stop after this many decreases have run their course (default 3)",
    "warmup_epochs": "onecycle: epochs of linear warm-up",
    "out": "output folder: checkpoints, metrics, curves, TensorBoard, final weights (default runs/vggnet)",
    "resume": "continue the run saved in --out (model, optimizer, schedule, position, random state)",
    "device": "auto, cpu, cuda or cuda:N (default auto)",
    "seed": "random seed: data order, augmentation and initialisation (default 0)",
    "amp": "autocast: auto (bf16 where the hardware has it), bf16, fp16 (CUDA, with gradient scaling) or off",
    "channels_last": "NHWC memory layout (default on; --no-channels-last turns it off)",
    "compile": "compile the model with torch.compile",
    "save_every": "also checkpoint every this many steps (default: at the end of each epoch only)",
    "max_steps": "stop (and save) after this many optimizer steps in all",
    "progress": "progress bar per epoch (default on; --no-progress turns it off)",
    "tensorboard": "write TensorBoard event files (default on)",
}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from its annotation; unset flags leave the recipe's value."""
    import typing
    from dataclasses import fields

    from .train import TrainConfig

    p.add_argument("--recipe", help="a TOML recipe (e.g. recipes/fashion_mnist.toml); flags override it")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is not list and options:  # X | None
            kind = options[0]
        if kind is bool:
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=TRAIN_HELP[f.name]
            )
        elif typing.get_origin(kind) is list:
            p.add_argument(
                flag, type=typing.get_args(kind)[0], nargs="+", default=argparse.SUPPRESS, help=TRAIN_HELP[f.name]
            )
        else:
            p.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=TRAIN_HELP[f.name])


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, TrainingStopped, load_recipe, train

    settings = load_recipe(args.recipe) if args.recipe else {}
    settings.update({k: v for k, v in vars(args).items() if k not in ("command", "func", "recipe")})
    try:
        train(TrainConfig(**settings))
    except TrainingStopped as stop:
        print(f"vggnet train: {stop}", file=sys.stderr)
        return stop.code
    return 0


def _load_all(args: argparse.Namespace):
    from .inference import load_model

    if not args.weights:
        raise ValueError(
            "give the model with --weights FILE (a vggnet checkpoint or weights file, or any weights "
            "file, URL or 'torchvision' together with --arch)"
        )
    return [load_model(w, args.arch) for w in args.weights]


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, markdown, open_source, write_report

    models = _load_all(args)
    source = open_source(args.data, args.batch_size, args.strict, args.limit)
    crop = models[0].crop
    scale_sets = args.scales or [[256 if crop == 224 else crop]]
    report = evaluate(models, source, scale_sets, args.protocols, args.device)
    print(markdown(report), end="")
    md, js = write_report(report, args.out)
    print(f"wrote {md} and {js}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import heatmap, predict

    (loaded,) = _load_all(args)
    for result in predict(loaded, args.images, args.top, args.scale, args.device):
        print(result["image"])
        for name, p in result["top"]:
            print(f"  {100 * p:6.2f}%  {name}")
    if args.heatmap:
        if len(args.images) != 1:
            raise ValueError("--heatmap draws one image; give a single IMAGE")
        print(f"wrote {heatmap(loaded, args.images[0], args.heatmap, args.scale, args.device)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    (loaded,) = _load_all(args)
    results = export(loaded, args.out, tuple(args.format), opset=args.opset)
    for fmt, r in results.items():
        print(f"{fmt}: {r['path']} (checked against PyTorch at two sizes: max relative error {r['max_rel_error']:.1e})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import platform
    from pathlib import Path

    import torch

    from . import bench

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32 = bench.matmul_gflops(device)
    bf16 = bench.matmul_gflops(device, torch.bfloat16)
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu}, {torch.get_num_threads()} threads"
    print(
        f"machine: {name}; torch {torch.__version__}; matmul {fp32:.0f} GFLOP/s float32, {bf16:.0f} bfloat16",
        flush=True,
    )
    sections = []
    if "inference" in args.only:
        for batch in args.batch:
            sections.append(
                ("inference", bench.inference(args.arch, batch, device, args.repeats, args.compile, args.amp))
            )
            print(bench.table(sections[-1:], fp32), flush=True)
    if "train" in args.only:
        sections.append(
            ("train", bench.training_step(args.arch, args.train_batch, device, args.repeats, args.amp, args.compile))
        )
        print(bench.table(sections[-1:], fp32), flush=True)
    if "dense" in args.only:
        sections.append(("dense", bench.dense_vs_multicrop(args.arch, args.q, device, max(1, args.repeats // 2))))
        print(bench.table(sections[-1:], fp32), flush=True)
    if "data" in args.only:
        sections.append(("data", bench.data_pipeline(Path(args.images))))
        print(bench.table(sections[-1:], fp32), flush=True)
    text = (
        f"machine: {name}; torch {torch.__version__}; matmul {fp32:.0f} GFLOP/s float32, {bf16:.0f} bfloat16\n\n"
        + bench.table(sections, fp32)
        + "\n"
    )
    print("\n" + text)
    if args.out:
        from .files import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


def _model_arguments(p: argparse.ArgumentParser, repeat: bool = False) -> None:
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        required=False,
        help="a vggnet checkpoint (.pt) or weights (.safetensors); or any weights file, URL or 'torchvision'"
        " with --arch" + ("; repeat for an ensemble (posteriors averaged)" if repeat else ""),
    )
    p.add_argument("--arch", help="architecture of weights that do not say (e.g. torchvision's .pth files)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggnet", description="VGG (Simonyan & Zisserman 2014) in PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="Table 1, parameters, GMACs and memory; or one architecture layer by layer")
    p.add_argument("arch", nargs="?", help="an architecture (vgg16, D, vgg19_bn ...); omit for the whole family")
    p.add_argument("--size", type=int, default=224, help="input image side (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of fc8 (default 1000)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "train",
        help="train a VGG (the paper's recipe by default)",
        description="Train a VGG the paper's way. Defaults are the paper's; --recipe loads a TOML "
        "file of settings, and any flag overrides it. Under torchrun it trains on every process.",
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    from .evaluate import PROTOCOLS

    p = sub.add_parser(
        "eval",
        help="top-1/top-5 error under the paper's test protocols",
        description="Evaluate one model or an ensemble the paper's way (Sect. 3.2) and print a table "
        "in the layout of its Tables 3-6, also written as Markdown and JSON.",
    )
    _model_arguments(p, repeat=True)
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="an image folder (DIR/val/<class>/* or DIR/<class>/*), or fashion-mnist (its test set)",
    )
    p.add_argument(
        "--scales",
        type=int,
        nargs="+",
        action="append",
        help="test scales Q: one for single-scale, several for multi-scale (e.g. 256 384 512); repeat "
        "for more columns (default 256, or the training size for small images)",
    )
    p.add_argument(
        "--protocols",
        nargs="+",
        default=list(PROTOCOLS),
        choices=PROTOCOLS,
        help="centre crop (torchvision's), dense, multi-crop (5x5 grid x 2 flips), or dense+multicrop",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per batch for equal-sized data (default 64)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    p.add_argument("--out", default="runs/eval", help="folder for eval.md and eval.json (default runs/eval)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of images, and a heat map of the dense class scores")
    _model_arguments(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--scale", type=int, help="test scale Q (default 256, or the training size for small images)")
    p.add_argument("--heatmap", metavar="OUT.png", help="draw the dense score map of the top class over the image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="TorchScript and ONNX (dense head, dynamic batch and size), checked")
    _model_arguments(p)
    p.add_argument("--out", default="runs/export", help="output folder (default runs/export)")
    p.add_argument("--format", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"])
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="images/s and memory against torchvision's VGG, in one process")
    p.add_argument("--arch", default="vgg16", help="configuration (default vgg16)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--only",
        nargs="+",
        default=["inference", "train", "dense", "data"],
        choices=["inference", "train", "dense", "data"],
        help="which measurements (default all)",
    )
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="inference batch sizes (default 1 8)")
    p.add_argument("--train-batch", type=int, default=8, help="training-step batch size (default 8)")
    p.add_argument("--q", type=int, default=384, help="test scale of the dense vs multi-crop run (default 384)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each run (default 5)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd vggnet")
    p.add_argument("--amp", action="store_true", help="also time bf16 autocast")
    p.add_argument("--threads", type=int, help="torch threads (default: PyTorch's)")
    p.add_argument("--images", default="runs/bench_jpegs", help="folder of JPEGs for the data pipeline (made if empty)")
    p.add_argument("--out", help="also write the table to this Markdown file")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"vggnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
