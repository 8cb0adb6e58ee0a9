#!/usr/bin/env bash
# perf_analyzer, Triton's load tool, for the tests and benchmarks/serve.py: the binary that tritonclient 2.51 ships
# (the newest one built for Debian 12's glibc 2.36; later ones need 2.38), with the two libraries it links: Debian's
# libb64 and CUDA's runtime (loaded, not used: no GPU is needed). Installed as .venv/bin/perf_analyzer; sourced by
# test.sh, safe to run again. Where it cannot be installed, the tests that need it say so and skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/perf_analyzer ] && [ "$(uname -m)" = x86_64 ]; then
    echo "setup: installing perf_analyzer (from tritonclient 2.51.0's wheel)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    dir=.venv/perf_analyzer
    mkdir -p "$dir/lib" "$dir/wheels"
    if { dpkg -s libb64-0d >/dev/null 2>&1 || $SUDO apt-get install -y -qq libb64-0d >/dev/null 2>&1 \
            || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libb64-0d >/dev/null 2>&1; }; } \
        && .venv/bin/python -m pip download -q --no-deps --only-binary :all: -d "$dir/wheels" \
            tritonclient==2.51.0 nvidia-cuda-runtime-cu12==12.9.79 2>/dev/null \
        && .venv/bin/python - "$dir" <<'PY'
import glob, os, stat, sys, zipfile

folder = sys.argv[1]
wanted = {"tritonclient-2.51.0.data/data/bin/perf_analyzer": f"{folder}/perf_analyzer",
          "nvidia/cuda_runtime/lib/libcudart.so.12": f"{folder}/lib/libcudart.so.12"}
for wheel in glob.glob(f"{folder}/wheels/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                with z.open(name) as src, open(wanted[name], "wb") as dst:
                    dst.write(src.read())
os.chmod(f"{folder}/perf_analyzer", os.stat(f"{folder}/perf_analyzer").st_mode | stat.S_IXUSR)
PY
    then
        printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/perf_analyzer" "$@"\n' \
            "$PWD/$dir" "$PWD/$dir" > .venv/bin/perf_analyzer
        chmod +x .venv/bin/perf_analyzer
        .venv/bin/perf_analyzer --version >/dev/null 2>&1 || rm -f .venv/bin/perf_analyzer
    fi
    rm -rf "$dir/wheels"
    [ -x .venv/bin/perf_analyzer ] || echo "setup: could not install perf_analyzer; its tests will be skipped" >&2
fi
