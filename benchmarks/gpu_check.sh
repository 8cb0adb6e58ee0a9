#!/usr/bin/env bash
# The GPU check: model tests on CUDA, VGG16 training and inference throughput against torchvision (bf16,
# channels_last, eager and compiled, model-FLOPs utilisation), the folder pipeline (CPU workers against decoding and
# augmenting on the GPU; 1,024 ImageNet-sized JPEGs made on the machine's CPU, ~20 s, since they would not fit the
# 64 MiB a run carries) and a VGG16 training fed by each, a full Fashion-MNIST training, and Table 3 in miniature.
# Made for a machine where PyTorch and torchvision are installed and nothing can be installed or downloaded:
# the project runs from src/ and Fashion-MNIST's idx files travel in .data/fashion-mnist (ignored by git;
# `bash benchmarks/gpu_check.sh --prepare` fills it from Debian's dataset-fashion-mnist here).
#   bash benchmarks/gpu_check.sh                      # on the GPU machine, about 8-10 minutes on one H100/H200
#   bash benchmarks/gpu_check.sh --skip table3        # leave a step out (tests train inference pipeline fashion table3: vggnet reproduce)
#   bash benchmarks/gpu_check.sh --device cpu --tiny  # a dry run of every step on a CPU
# Results go to $OUT (or runs/gpu_check); the last lines are a table of figures.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .data/fashion-mnist
    cp -n /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
    ls -l .data/fashion-mnist
    exit 0
fi
PY=python3
[ -x .venv/bin/python ] && ! python3 -c "import torch" 2>/dev/null && PY=.venv/bin/python
export PYTHONPATH=src PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"
