#!/usr/bin/env bash
# The test command: set up (see setup.sh), lint, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
.venv/bin/ruff check src tests benchmarks docs
.venv/bin/ruff format --check src tests benchmarks docs
.venv/bin/python -m pytest "$@"
