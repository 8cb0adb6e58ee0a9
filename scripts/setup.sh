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
# VGGNET_EXTRAS: the extras to install, comma-separated (main.sh: none, or what its command needs; test.sh: test,
# which holds every other). Each installed one leaves a marker, so a second run installs nothing.
EXTRAS="${VGGNET_EXTRAS-test}"
installed() {  # every extra named (or the test extra) installed since pyproject.toml last changed
    local extra
    for extra in $(echo "${EXTRAS:-base}" | tr ',' ' '); do
        for marker in "$VENV/.vggnet-installed-$extra" "$VENV/.vggnet-installed-test"; do
            [ -e "$marker" ] && [ ! pyproject.toml -nt "$marker" ] && continue 2
        done
        return 1
    done
    return 0
}
if ! "$PY" -c "import vggnet" 2>/dev/null || ! installed; then
    echo "setup: installing vggnet${EXTRAS:+[$EXTRAS]}" >&2
    "$PY" -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
    for extra in base $(echo "$EXTRAS" | tr ',' ' '); do touch "$VENV/.vggnet-installed-$extra"; done
fi
