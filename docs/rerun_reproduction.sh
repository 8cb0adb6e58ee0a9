#!/usr/bin/env bash
# The reproduction's rerun after its second review, and its publication: both plans (no BN, 8 seeds of the nets; BN,
# 10), 5 seeds of the training scales each, one run at a time, niced, one thread per run; then both reports written
# again with today's code from the runs' folders and published into docs/ and REPRODUCTION.md.
#
#   docs/rerun_reproduction.sh run        # train what is missing (run it again to resume: finished runs are skipped,
#                                         # an interrupted one resumes from its checkpoint)
#   docs/rerun_reproduction.sh publish    # once both plans are done: the reports, then docs/ and REPRODUCTION.md
#
# RUNS (default /work/runs) holds the two folders; PYTHON (default python) runs vggnet; BOTH=1 runs the two plans at
# once (two runs at a time: on a machine nobody else is using). A folder resumes only where it was made: keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/work/runs}
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
PLAIN=(--subset 10000 --patience 2 --seeds 8 --scale-seeds 5 --out "$RUNS/reproduce")
BN=(--subset 10000 --seeds 10 --scale-seeds 5 --batch-norm --out "$RUNS/reproduce_bn")

reproduce() { nice -n 19 "$PYTHON" -m vggnet reproduce --no-progress "$@"; }

case "${1:-}" in
  run)
    if [[ "${BOTH:-0}" == 1 ]]; then
      reproduce "${PLAIN[@]}" & reproduce "${BN[@]}" & wait
    else
      reproduce "${PLAIN[@]}"
      reproduce "${BN[@]}"
    fi
    ;;
  publish)
    reproduce "${PLAIN[@]}" --report-only
    reproduce "${BN[@]}" --report-only
    "$PYTHON" docs/publish_reproduction.py "$RUNS/reproduce" "$RUNS/reproduce_bn"
    ;;
  *)
    echo "usage: $0 run|publish" >&2
    exit 2
    ;;
esac
