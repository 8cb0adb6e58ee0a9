#!/usr/bin/env bash
# The main job on its built-in default: set up (see setup.sh), then run vggnet. Arguments go to vggnet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ $# -eq 0 ]; then set -- info; fi
exec .venv/bin/vggnet "$@"
