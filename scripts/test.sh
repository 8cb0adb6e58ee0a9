#!/usr/bin/env bash
# The test command: set up (see setup.sh) with the test extra, the browser and Triton's perf_analyzer, lint, run the
# whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export VGGNET_EXTRAS="${VGGNET_EXTRAS-test}"  # everything the tests use: every other extra, Keras, lpips, timm ...
source scripts/setup.sh
# The service's page is tested in a real browser: Debian's chromium and its driver (the test says so and skips
# where they cannot be installed).
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null; then
    echo "setup: installing chromium and chromium-driver for the browser test" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
        || echo "setup: could not install chromium; the browser test will be skipped" >&2
fi
source scripts/perf_analyzer.sh
.venv/bin/ruff check src tests benchmarks docs
.venv/bin/ruff format --check src tests benchmarks docs
.venv/bin/python -m pytest "$@"
