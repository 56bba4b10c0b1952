#!/bin/bash
# The acceptance run of a GPU node: every number the project needs from a GPU in one command, offline,
# in a time budget (default 7 minutes); always writes OUT/summary.txt and OUT/records.tar.gz. The steps
# are described in s2s_lightning/acceptance.py; this wrapper only needs a Python that has torch.
#
#   S2S_MULTI30K_DIR=path/to/multi30k bash sweeps/gpu/measure.sh OUT [--minutes 7] [--trials-per-gpu 4,8]
#   bash sweeps/gpu/measure.sh OUT --dry-run     # every step on the CPU at tiny sizes (the test suite runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m s2s_lightning.acceptance "$@"
