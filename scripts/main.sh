#!/usr/bin/env bash
# The main job on its built-in default: set up what it needs (see setup.sh: the package alone, no extra), then run
# vggnet. Arguments go to vggnet; a command that needs an extra (serve and inside: serve; export and .onnx files:
# export; --ray: ray; ...) gets it installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
export VGGNET_EXTRAS="${VGGNET_EXTRAS-}"  # the base package, unless the caller names extras
source scripts/setup.sh
if [ $# -gt 0 ]; then
    needed=$(.venv/bin/python -c 'import sys; from vggnet.base.extras import extras_for
print(",".join(extras_for(sys.argv[1:])))' "$@")
    if [ -n "$needed" ]; then
        echo "setup: vggnet $1 needs vggnet[$needed]" >&2
        VGGNET_EXTRAS="$needed" source scripts/setup.sh
    fi
fi
# Built-in default: train the paper's net B (VGG-13, BN, 1/4 width) on Fashion-MNIST to about 92% test accuracy in 3
# epochs (about 1 to 4.5 minutes on 2 CPU cores, by CPU kind: BENCHMARKS.md).
if [ $# -eq 0 ]; then
    out="runs/fashion_mnist_$(date +%Y%m%d_%H%M%S)"
    set -- train --recipe fashion_mnist --out "$out"
fi
exec .venv/bin/vggnet "$@"
