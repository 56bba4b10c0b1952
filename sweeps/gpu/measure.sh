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
# The Python is chosen explicitly: $PYTHON, else the first of python3 and python that imports torch (on a
# node, `python3` may be the system's, without torch). It is named in the first line.
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
      PYTHON="$(command -v "$candidate")"
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "measure.sh: no Python with torch found (tried ${PYTHON:-python3 and python}); set PYTHON=/path/to/python" >&2
  exit 2
fi
echo "measure.sh: $PYTHON ($("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"
exec "$PYTHON" -m s2s_lightning.acceptance "$@"
