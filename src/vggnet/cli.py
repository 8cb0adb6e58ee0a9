"""The ``vggnet`` command: a thin layer over the Python API.

Each sub-command is a pair: ``add_X`` declares its flags, ``cmd_X`` calls the API. Every failure a user can cause
ends as one line on stderr and a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .files import folder_lock
from .settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, add_flags, arg, typed


# -- info -------------------------------------------------------------------------------------------------------------
def add_info(sub) -> None:
    p = sub.add_parser("info", help="Table 1, parameters, GMACs and memory; or one architecture layer by layer")
    p.add_argument("arch", nargs="?", help="an architecture (vgg16, D, vgg19_bn ...); omit for the whole family")
    p.add_argument("--size", type=arg(int, Range(32)), default=224, help="input image side (default 224)")
    p.add_argument("--num-classes", type=arg(int, AT_LEAST_ONE), default=1000, help="classes of fc8 (default 1000)")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .info import family_report, layer_report
    from .model import build

    if args.arch is None:
        print(family_report(args.size))
    else:
        with torch.device("meta"):
            model = build(args.arch, num_classes=args.num_classes)
        print(layer_report(model, args.size))
    return 0


# -- train ------------------------------------------------------------------------------------------------------------
def add_train(sub) -> None:
    """One flag per TrainConfig field; unset flags leave the recipe's value."""
    from .training.settings import TrainConfig

    p = sub.add_parser(
        "train",
        help="train or fine-tune a VGG (the paper's recipe by default)",
        description="Train a VGG the paper's way, or fine-tune one from pretrained weights. Defaults are the "
        "paper's; --recipe loads a TOML file of settings (a path, or the name of one shipped with vggnet), and "
        "any flag overrides it. Under torchrun it trains on every process.",
    )
    p.add_argument("--recipe", help="a TOML recipe: a path or a shipped name (fashion_mnist, finetune, paper_s256 ...)")
    add_flags(p, TrainConfig, suppress=True)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .training.loop import train
    from .training.settings import TrainConfig, load_recipe

    given = typed(args, TrainConfig)
    if str(given.get("arch", "")).startswith("["):
        try:
            given["arch"] = json.loads(given["arch"])
        except json.JSONDecodeError as err:
            raise ValueError(f"--arch {given['arch']} is not a JSON configuration list: {err}") from None
    settings = load_recipe(args.recipe) if args.recipe else {}
    settings.update(given)
    result = train(TrainConfig(**settings), given=set(given) | (set(settings) if args.recipe else set()))
    if result.exit_code:
        print(f"vggnet train: {result.message}", file=sys.stderr)
    elif result.status != "finished":
        print(result.message)
    return result.exit_code


# -- eval, predict, export --------------------------------------------------------------------------------------------
def add_model_arguments(p: argparse.ArgumentParser, repeat: bool = False) -> None:
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        help="a vggnet checkpoint (.pt) or weights (.safetensors); or any weights file, URL or 'torchvision'"
        " with --arch" + ("; repeat for an ensemble (posteriors averaged)" if repeat else ""),
    )
    p.add_argument("--arch", help="architecture of weights that do not say (e.g. torchvision's .pth files)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")


def load_all(args: argparse.Namespace) -> list:
    from .inference import load_model

    if not args.weights:
        raise ValueError(
            "give the model with --weights FILE (a vggnet checkpoint or weights file, or any weights "
            "file, URL or 'torchvision' together with --arch)"
        )
    check_device(args.device)
    return [load_model(w, args.arch) for w in args.weights]


def check_device(name: str) -> None:
    from .training.distributed import pick_device

    pick_device(name)


def add_eval(sub) -> None:
    from .inference import PROTOCOLS

    p = sub.add_parser(
        "eval",
        help="top-1/top-5 error under the paper's test protocols",
        description="Evaluate one model or an ensemble the paper's way (Sect. 3.2) and print a table "
        "in the layout of its Tables 3-6, also written as Markdown and JSON.",
    )
    add_model_arguments(p, repeat=True)
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="an image folder (DIR/val/<class>/* or DIR/<class>/*), or fashion-mnist (its test set)",
    )
    p.add_argument(
        "--scales",
        type=arg(int, AT_LEAST_ONE),
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
    p.add_argument("--batch-size", type=arg(int, AT_LEAST_ONE), default=64,
                   help="images per batch for equal-sized data (default 64)")  # fmt: skip
    p.add_argument("--limit", type=arg(int, AT_LEAST_ONE), help="evaluate only the first N images")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    p.add_argument("--out", default="runs/eval", help="folder for eval.md and eval.json (default runs/eval)")
    p.add_argument(
        "--decode",
        default="auto",
        choices=["auto", "cpu", "gpu"],
        help="decode a folder's JPEGs on the GPU (gpu) or the CPU; auto: gpu with --device cuda",
    )
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .data.datasets import open_source
    from .evaluate import evaluate, markdown, write_report

    check_out_folder(args.out)
    models = load_all(args)
    channels = models[0].model.in_channels
    from .data.device import decodes_on_device

    device = torch.device(args.device)
    decode_device = device if decodes_on_device(args.decode, device) else None
    source = open_source(args.data, args.batch_size, args.strict, args.limit, None, channels, decode_device)
    scale_sets = args.scales or [[models[0].default_scale]]
    with folder_lock(args.out, "evaluation folder"):
        report = evaluate(models, source, scale_sets, args.protocols, args.device)
        print(markdown(report), end="")
        md, js = write_report(report, args.out)
    print(f"wrote {md} and {js}")
    return 0


def check_out_folder(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a folder")


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes of images, Grad-CAM, and a heat map of the dense class scores")
    add_model_arguments(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top", type=arg(int, AT_LEAST_ONE), default=5, help="how many classes to print (default 5)")
    p.add_argument("--scale", type=arg(int, AT_LEAST_ONE),
                   help="test scale Q (default: the one the model was validated at)")  # fmt: skip
    p.add_argument("--protocol", default="center", choices=["center", "dense", "multicrop"],
                   help="center (default): the centre crop at the model's test scale and its mirror, as its "
                   "validation measured; dense: the paper's fully convolutional net on the whole image; multicrop: "
                   "5 x 5 crops x 2 flips")  # fmt: skip
    p.add_argument("--heatmap", metavar="OUT.png", help="draw the dense score map of the top class over the image")
    p.add_argument("--cam", metavar="OUT.png", help="draw the Grad-CAM map of the top class over the image")
    p.add_argument("--cam-layer", default="relu5_3", help="Grad-CAM's layer (default relu5_3, or the last ReLU)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import cam, heatmap, predict

    for flag, value in (("--heatmap", args.heatmap), ("--cam", args.cam)):
        if value and len(args.images) != 1:
            raise ValueError(f"{flag} draws one image; give a single IMAGE")
    (loaded,) = load_all(args)
    for result in predict(loaded, args.images, args.top, args.scale, args.device, args.protocol):
        print(result["image"])
        for name, p in result["top"]:
            print(f"  {100 * p:6.2f}%  {name}")
    if args.heatmap:
        print(f"wrote {heatmap(loaded, args.images[0], args.heatmap, args.scale, args.device)}")
    if args.cam:
        print(f"wrote {cam(loaded, args.images[0], args.cam, args.scale, args.device, args.cam_layer)}")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="TorchScript and ONNX (dense head, dynamic batch and size), checked")
    add_model_arguments(p)
    p.add_argument("--out", default="runs/export", help="output folder (default runs/export)")
    p.add_argument("--format", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"])
    p.add_argument("--opset", type=arg(int), default=17, help="ONNX opset (default 17; 13 and up with --int8)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx, statically quantised (QDQ)")
    p.add_argument("--data", default="fashion-mnist", help="int8: an image folder (train/ calibrates, val/ checks) "
                   "or fashion-mnist (training set calibrates, test set checks)")  # fmt: skip
    p.add_argument("--calibration", type=arg(int, AT_LEAST_ONE), default=500, metavar="N",
                   help="int8: calibration images (default 500)")  # fmt: skip
    p.add_argument("--check", type=arg(int, AT_LEAST_ONE), default=1000, metavar="N",
                   help="int8: held-out images checked (default 1000)")  # fmt: skip
    p.add_argument("--triton", metavar="DIR", help="also write a Triton model repository: DIR/NAME/1/model.onnx "
                   "(int8 with --int8), config.pbtxt (dynamic batching; checked against Triton's schema), "
                   "labels.txt")  # fmt: skip
    p.add_argument("--name", default="vggnet", help="the model's name in the Triton repository (default vggnet)")
    p.add_argument(
        "--int8-scheme",
        default="auto",
        choices=["auto", "u8s8", "u8s8-reduced", "u8u8"],
        help="int8: u8s8 on CPUs with VNNI, u8s8-reduced (7-bit weights) on AVX2 ones (auto picks)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import Int8Settings, check_options, export, int8_sources

    check_out_folder(args.out)
    numbers = (args.calibration, args.check) if args.int8 else (1, 1)
    check_options(tuple(args.format), args.opset, Int8Settings(None, None, *numbers, args.int8_scheme) if args.int8
                  else None)  # fmt: skip
    (loaded,) = load_all(args)
    if args.triton:  # the repository's config is checked before any work is done
        from .export import check_triton_config, triton_config

        check_out_folder(args.triton)
        check_triton_config(triton_config(args.name, loaded))
        args.format = sorted({*args.format, "onnx"})
    int8 = None
    if args.int8:
        sources = int8_sources(args.data, args.calibration, args.check, loaded.model.in_channels)
        int8 = Int8Settings(*sources, args.calibration, args.check, args.int8_scheme)
    results = export(loaded, args.out, tuple(args.format), opset=args.opset, int8=int8)
    if args.triton:
        from .export import write_triton

        onnx = results["int8" if args.int8 else "onnx"]["path"]
        folder = write_triton(loaded, onnx, args.triton, args.name)
        results["triton"] = {"path": str(folder)}
    for fmt, r in results.items():
        if fmt == "removed":
            print(f"removed {', '.join(r['files'])} of the earlier export (not part of this one)")
        elif fmt == "triton":
            print(f"triton: {r['path']} (1/model.onnx, config.pbtxt with dynamic batching, labels.txt; the config "
                  "parses as Triton's ModelConfig)")  # fmt: skip
        elif fmt == "int8":
            accuracy = (
                f"accuracy float32 {100 * r['float_accuracy']:.2f}%, int8 {100 * r['int8_accuracy']:.2f}%"
                if r["float_accuracy"] is not None
                else f"accuracy not measured: {r['accuracy_note']}"
            )
            print(
                f"int8: {r['path']} ({r['scheme']}; checked on {r['images']} held-out images: top-1 agreement with "
                f"float32 {100 * r['agreement']:.2f}%, {accuracy})"
            )
        else:
            error = r["max_rel_error"]
            print(f"{fmt}: {r['path']} (checked against PyTorch at two sizes: max relative error {error:.1e})")
    return 0


# -- features and the linear probe ------------------------------------------------------------------------------------
def add_features(sub) -> None:
    p = sub.add_parser(
        "features",
        help="one descriptor per image (the paper's Appendix B), saved as safetensors",
        description="Turn every image of a folder (DIR/<class>/*, or DIR/SPLIT/<class>/*) or a Fashion-MNIST split "
        "into one vector: the layer's dense map averaged over space, the mirror image and the scales Q, then "
        "L2-normalised. Writes tensors features (N x D) and labels (N), metadata classes and files.",
    )
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="an image folder, or fashion-mnist")
    p.add_argument("--split", help="train, val, test ...: DIR/SPLIT, or the Fashion-MNIST split (default test)")
    p.add_argument(
        "--layer", default="relu7", help="a Caffe layer name (default relu7: fc7 after its ReLU, the paper's)"
    )
    p.add_argument("--scales", type=arg(int, AT_LEAST_ONE), nargs="+",
                   help="test scales Q, averaged (default: the one the model was validated at)")  # fmt: skip
    p.add_argument("--no-flip", dest="flip", action="store_false", help="leave out the mirror image")
    p.add_argument("--no-l2", dest="l2", action="store_false", help="leave the descriptors unnormalised")
    p.add_argument("--limit", type=arg(int, AT_LEAST_ONE), help="only the first N images")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="where to write the features")
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from .data.datasets import open_source
    from .features import extract_features, save_features

    if not args.out.endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {args.out}")
    (loaded,) = load_all(args)
    source = open_source(args.data, 64, False, args.limit, args.split, loaded.model.in_channels)
    with folder_lock(args.out, "feature file"):
        found = extract_features(loaded, source, args.layer, args.scales, args.flip, args.l2, args.device)
        path = save_features(found, args.out)
    print(f"wrote {path}: {found.features.shape[0]} images x {found.features.shape[1]} ({args.layer}), "
          f"{len(found.classes)} classes")  # fmt: skip
    return 0


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="a linear SVM on feature files: mean class accuracy and a per-class table")
    p.add_argument("--train", required=True, metavar="A.safetensors", help="features to fit on (vggnet features)")
    p.add_argument("--test", required=True, metavar="B.safetensors", help="features to score")
    p.add_argument("--c", type=arg(float, POSITIVE), default=1.0, help="the SVM's regularisation C (default 1)")
    p.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from .features import load_features
    from .probe import linear_probe

    report = linear_probe(load_features(args.train), load_features(args.test), args.c)
    print(report.table())
    print(f"accuracy: {100 * report.accuracy:.2f}%")
    print(f"mean class accuracy: {100 * report.mean_class_accuracy:.2f}%")
    return 0


# -- reproduce ------------------------------------------------------------------------------------------------------
def add_reproduce(sub) -> None:
    from .reproduce.plan import Settings

    d = Settings()
    p = sub.add_parser(
        "reproduce",
        help="the paper's Tables 3-6 in miniature: plan, train, evaluate, report with verdicts",
        description="Run the paper's experiments (Sect. 4) on any data vggnet train takes (Fashion-MNIST by "
        "default): A to E at the small S, C to E at the large and jittered S, multi-scale, dense and multi-crop "
        "testing, and an ensemble, the paper's procedure (no BN, deeper nets from net A) at the scales' paper ratios "
        "to the crop. Each run has its own folder under --out; running again skips finished runs and resumes an "
        "interrupted one. Writes reproduce.md, reproduce.json and reproduce.png.",
    )
    p.add_argument("--data", help="an image folder (DIR/train, DIR/val) or Fashion-MNIST's idx files (default: "
                   "Fashion-MNIST from Debian's package or downloaded)")  # fmt: skip
    p.add_argument("--dataset", choices=["fashion-mnist", "folder", "synthetic"], help="default: from --data")
    numbers = [
        ("--crop", int, AT_LEAST_ONE, f"training crop, the paper's 224 (default {d.crop})"),
        ("--width", float, POSITIVE, f"width multiplier (default {d.width:g})"),
        ("--fc-width", int, AT_LEAST_ONE, "width of fc6 and fc7 (default 4096 x width)"),
        ("--epochs", int, AT_LEAST_ONE, f"epochs of the small-S stage (default {d.epochs})"),
        ("--finetune-epochs", int, AT_LEAST_ONE, "epochs of the large-S and jittered stages (default half)"),
        ("--seeds", int, AT_LEAST_ONE, f"seeds per net (default {d.seeds})"),
        ("--lr", float, POSITIVE, f"learning rate from scratch (default {d.lr:g})"),
        ("--finetune-lr", float, POSITIVE, f"rate of the large-S and jittered stages ({d.finetune_lr:g}, the paper's)"),
        ("--batch-size", int, AT_LEAST_ONE, f"batch (default {d.batch_size})"),
        (
            "--patience",
            int,
            NON_NEGATIVE,
            f"epochs without improvement before the rate drops 10x ({d.patience})",
        ),
        ("--subset", int, AT_LEAST_ONE, "train on a balanced subset of this many images"),
        ("--eval-limit", int, AT_LEAST_ONE, "evaluate on the first N test images only"),
    ]
    for flag, kind, allowed, text in numbers:
        default = getattr(d, flag[2:].replace("-", "_"))
        p.add_argument(flag, type=arg(kind, allowed), default=default, help=text)
    p.add_argument("--batch-norm", action="store_true", help="BN nets, each from scratch (its own tables)")
    p.add_argument("--init", default=d.init, choices=["normal", "xavier", "kaiming"],
                   help="initialisation of net A and of the layers not copied from it: normal (the paper's, std "
                   "0.01) or xavier (Glorot, which the authors later found trains without pre-training)")  # fmt: skip
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--amp", default=d.amp, choices=["auto", "bf16", "fp16", "off"], help="autocast (default auto)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress lines while training")
    p.add_argument("--out", help="folder of the runs and the report (default runs/reproduce, runs/reproduce_bn)")
    p.add_argument("--plan", action="store_true", help="print the runs and their estimated cost; run nothing")
    p.add_argument("--report-only", action="store_true", help="write the report from the runs already done")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce.plan import Settings, execute, measure_cost, plan, plan_table
    from .reproduce.report import write_report

    names = set(Settings.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values.setdefault("out", "runs/reproduce_bn" if args.batch_norm else "runs/reproduce")
    settings = Settings(**values)
    settings.check()
    runs = plan(settings)
    if args.plan:
        print(plan_table(settings, runs, measure_cost(settings)))
        return 0
    with folder_lock(settings.out, "reproduction folder"):
        if not args.report_only:
            execute(settings, runs)
        for path in write_report(settings, runs):
            print(f"wrote {path}")
    return 0


# -- serve ----------------------------------------------------------------------------------------------------------
def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: the Open Inference Protocol (Triton/KServe v2), /predict, a page at /",
        description="An inference service for one model: requests are batched dynamically, images of any size are "
        "brought to the model's test geometry, /metrics speaks Prometheus, SIGTERM finishes the requests in flight "
        "and exits. Every error is JSON with one sentence.",
    )
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=arg(int, Range(0, 65535)), default=8000, help="port (default 8000)")
    p.add_argument("--name", default="vggnet", help="the model's name in the protocol (default vggnet)")
    p.add_argument("--max-batch", type=arg(int, AT_LEAST_ONE), default=16, help="images per forward pass (16)")
    p.add_argument("--max-wait-ms", type=arg(float, NON_NEGATIVE), default=5.0,
                   help="how long a request waits for others to share its forward pass (default 5 ms)")  # fmt: skip
    p.add_argument("--max-queue", type=arg(int, AT_LEAST_ONE), default=256,
                   help="images allowed to wait; past it requests get 503 with Retry-After (default 256)")  # fmt: skip
    p.add_argument("--max-body", type=arg(int, AT_LEAST_ONE), default=10 * 2**20,
                   help="largest request body in bytes (default 10 MiB); more is refused with 413")  # fmt: skip
    p.add_argument("--max-pixels", type=arg(int, AT_LEAST_ONE), default=40_000_000,
                   help="largest image in pixels, read from its header before decoding (default 40 M)")  # fmt: skip
    p.add_argument("--timeout", type=arg(float, POSITIVE), default=30.0,
                   help="seconds a request may wait for the model before 504 (default 30)")  # fmt: skip
    p.add_argument("--threads", type=arg(int, AT_LEAST_ONE),
                   help="threads of the model (default: the cores but one for a small model, so that the HTTP side "
                   "keeps a core; all of them for one of more than a GMAC an image, e.g. VGG-16)")  # fmt: skip
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="classify the image only, not its mirror too (twice as fast, a bit less accurate)")  # fmt: skip
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import torch

    try:
        from .serving import Engine, ServeSettings, serve
    except ImportError as err:
        raise ValueError(f"serving needs vggnet's serve extra (pip install 'vggnet[serve]'): {err}") from None
    if len(args.weights) != 1:
        raise ValueError("give the model with one --weights (a vggnet file, an exported .onnx, or weights with --arch)")
    if args.max_queue < args.max_batch:
        raise ValueError(f"--max-queue {args.max_queue} must be at least --max-batch {args.max_batch}")
    check_device(args.device)
    engine = Engine.load(args.weights[0], args.arch, args.mirror, args.max_pixels)
    torch.set_num_threads(args.threads or engine.default_threads(os.cpu_count() or 2))
    settings = ServeSettings(args.name, args.max_batch, args.max_wait_ms, args.max_queue, args.max_body, args.timeout)
    loaded = engine.loaded
    print(f"serving {loaded.source} as {args.name!r} ({len(loaded.classes)} classes; images rescaled to "
          f"{loaded.default_scale}, centre {loaded.crop} x {loaded.crop}) on http://{args.host}:{args.port}/",
          flush=True)  # fmt: skip
    serve(engine, settings, args.host, args.port)
    print("stopped: every request in flight was answered", flush=True)
    return 0


# -- bench ------------------------------------------------------------------------------------------------------------
def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="images/s and memory against torchvision's VGG, in one process")
    p.add_argument("--arch", default="vgg16", help="configuration (default vgg16)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--only",
        nargs="+",
        default=["inference", "train", "dense", "data"],
        choices=["inference", "train", "dense", "data", "int8"],
        help="which measurements (default all but int8: onnxruntime float32 and int8 against PyTorch float32)",
    )
    p.add_argument("--batch", type=arg(int, AT_LEAST_ONE), nargs="+", default=[1, 8],
                   help="inference batch sizes (default 1 8)")  # fmt: skip
    p.add_argument("--train-batch", type=arg(int, AT_LEAST_ONE), default=8, help="training-step batch (default 8)")
    p.add_argument("--q", type=arg(int, Range(224)), default=384,
                   help="test scale of the dense vs multi-crop run (default 384)")  # fmt: skip
    p.add_argument("--repeats", type=arg(int, AT_LEAST_ONE), default=5, help="timed repeats of each run (default 5)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd vggnet")
    p.add_argument("--amp", action="store_true", help="also time bf16 autocast (skipped where bf16 is emulated)")
    p.add_argument("--threads", type=arg(int, AT_LEAST_ONE), help="torch threads (default: PyTorch's)")
    p.add_argument("--images", default="runs/bench_jpegs", help="folder of JPEGs for the data pipeline (made if empty)")
    p.add_argument("--out", help="also write the table to this Markdown file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    check_device(args.device)
    run_bench(args)
    return 0


# -- the command ------------------------------------------------------------------------------------------------------
COMMANDS = (
    add_info, add_train, add_eval, add_predict, add_export, add_features, add_probe, add_reproduce, add_serve,
    add_bench,
)  # fmt: skip


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggnet", description="VGG (Simonyan & Zisserman 2014) in PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _terminate(signum: int, frame) -> None:
    # SIGTERM as an exception: every `finally` and `with` runs, so temporary files and staged outputs are removed
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:  # bad input: a sentence, not a traceback
        print(f"vggnet {args.command}: error: {_sentence(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"vggnet {args.command}: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
    except SystemExit as stop:
        if stop.code == 128 + signal.SIGTERM:
            print(f"vggnet {args.command}: stopped by SIGTERM; nothing half-written was left", file=sys.stderr)
        raise
    except Exception as err:  # a bug: still one line, and the traceback on request
        if os.environ.get("VGGNET_DEBUG"):
            raise
        print(
            f"vggnet {args.command}: unexpected error: {type(err).__name__}: {_sentence(err)} "
            "(set VGGNET_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sentence(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err)
