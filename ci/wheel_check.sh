#!/usr/bin/env bash
# The package alone runs the book: build the wheel, install it (plus the embedded target's wheel,
# --no-deps) into a fresh virtual environment outside the repository, copy the chapters into an
# empty folder and execute each one there through its data-loading cells, with the model hub
# unreachable.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
python3 -m venv "$WORK/venv"
# shellcheck disable=SC1091
. "$WORK/venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip wheel --quiet --no-deps -w "$WORK/dist" "$ROOT"
python -m pip install --quiet -c "$ROOT/constraints.txt" torch
python -m pip install --quiet -c "$ROOT/constraints.txt" "$(ls "$WORK"/dist/dynatree_lib-*.whl)[book]"
bash "$ROOT/scripts/install_embedded_target.sh"
mkdir "$WORK/chapters"
cp "$ROOT"/book/*.ipynb "$WORK/chapters/"
cd "$WORK/chapters"
python -c "import dynatree_lib, sys; assert 'site-packages' in dynatree_lib.__file__, dynatree_lib.__file__"
export HF_HUB_OFFLINE=1 DYNATREE_PAIR=embedded DYNATREE_DEVICE=cpu
python "$ROOT/scripts/execute_book.py" --no-save --through-data ./*.ipynb
echo "wheel check: every chapter ran through its data-loading cells from the installed package alone"
