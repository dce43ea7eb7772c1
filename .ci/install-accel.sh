#!/usr/bin/env bash
# The `accel` extra (torch_scatter, torch_sparse) for the venv's torch: both compile from source
# against the installed torch (no build isolation: their setup.py imports torch). Each build
# compiles one file at a time, so the two run side by side to use two cores (the whole CI run,
# compile included, took 13 min on an idle 2-core machine; 49 min on a heavily shared one). Usage:
#   bash .ci/install-accel.sh [PYTHON]      (default .venv/bin/python)
set -euo pipefail
PY=${1:-.venv/bin/python}
wh=$(mktemp -d)
$PY -m pip install -q wheel
$PY -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir -w "$wh" torch_scatter==2.1.2 > "$wh/scatter.log" 2>&1 &
a=$!
$PY -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir -w "$wh" torch_sparse==0.6.18 > "$wh/sparse.log" 2>&1 &
b=$!
wait $a || { cat "$wh/scatter.log"; exit 1; }
wait $b || { cat "$wh/sparse.log"; exit 1; }
$PY -m pip install -q --no-deps "$wh"/*.whl
$PY -c "import torch_scatter, torch_sparse; print('accel extra:', torch_scatter.__version__, torch_sparse.__version__)"
