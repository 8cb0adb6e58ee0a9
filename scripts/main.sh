#!/usr/bin/env bash
# The main job on its built-in default: set up (see setup.sh), then run vggnet. Arguments go to vggnet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Built-in default: train the paper's net B (VGG-13, BN, 1/4 width) on Fashion-MNIST to about 92% test accuracy in 3
# epochs (3 to 4.5 minutes on 2 CPU cores, by CPU kind: BENCHMARKS.md).
if [ $# -eq 0 ]; then
    out="runs/fashion_mnist_$(date +%Y%m%d_%H%M%S)"
    set -- train --recipe fashion_mnist --out "$out"
fi
exec .venv/bin/vggnet "$@"
