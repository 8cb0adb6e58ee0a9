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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggnet", description="VGG (Simonyan & Zisserman 2014) in PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="Table 1, parameters, GMACs and memory; or one architecture layer by layer")
    p.add_argument("arch", nargs="?", help="an architecture (vgg16, D, vgg19_bn ...); omit for the whole family")
    p.add_argument("--size", type=int, default=224, help="input image side (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of fc8 (default 1000)")
    p.set_defaults(func=cmd_info)
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
