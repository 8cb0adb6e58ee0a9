#!/usr/bin/env bash
# Make the project runnable on a fresh machine: Fashion-MNIST from Debian, a virtual environment, the package.
# Sourced by main.sh and test.sh; safe to run again (each step is skipped when already done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
    echo "setup: installing dataset-fashion-mnist" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
        || echo "setup: could not install dataset-fashion-mnist; vggnet will download Fashion-MNIST" >&2
fi

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
    echo "setup: installing PyTorch" >&2
    "$PY" -m pip install -q -r requirements/torch.txt
fi
EXTRAS="${VGGNET_EXTRAS:-test}"
if ! "$PY" -c "import vggnet" 2>/dev/null || [ pyproject.toml -nt "$VENV/.vggnet-installed-$EXTRAS" ]; then
    echo "setup: installing vggnet[$EXTRAS]" >&2
    "$PY" -m pip install -q -e ".[$EXTRAS]"
    touch "$VENV/.vggnet-installed-$EXTRAS"
fi
