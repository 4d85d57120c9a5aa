#!/usr/bin/env bash
# Set up .venv with the exact versions CI tests (constraints.txt) and the project in editable mode.
#   bash scripts/setup.sh                 # CPU or GPU torch as pip resolves it
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # small CPU-only torch
#   CONSTRAINTS=ci/constraints-transformers-5.17.txt VENV=.venv-517 bash scripts/setup.sh   # oldest tested end
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CONSTRAINTS=${CONSTRAINTS:-constraints.txt}
[ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1090,SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -c "$CONSTRAINTS" torch ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
python -m pip install --quiet -c "$CONSTRAINTS" -e ".[test]"
bash scripts/install_embedded_target.sh
python -c "import dynatree_lib, torch, transformers; print('dynatree_lib ready: torch', torch.__version__, '| transformers', transformers.__version__)"
