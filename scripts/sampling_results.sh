#!/usr/bin/env bash
# Speculative sampling on the embedded pair (chapter 2's sampling section, results/README.md):
# every method samples at temperature 0.7 and 1.0 (top-k and top-p off), our sampling AR and
# HF's sampling (with and without the draft as assistant) in the same runs. About 45 minutes on
# a 2-core CPU as two halves side by side (OMP_NUM_THREADS=1 each):
#   OMP_NUM_THREADS=1 bash scripts/sampling_results.sh 0.7 & OMP_NUM_THREADS=1 bash scripts/sampling_results.sh 1.0
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
T="${1:?usage: $0 TEMPERATURE}"
P="--pair embedded --results-dir results --temperature $T"
M="ar,hf,hf-assisted,linear:k=2@model,linear:k=4@model,fixed:depth=3:branch=3:threshold=0.05@model"
M="$M,dynatree@model,dynatree@head"
python -m dynatree_lib bench $P --dataset spec_bench --per-group 2 --warmup 1 --max-new-tokens 96 --methods "$M"
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 8 --warmup 1 --max-new-tokens 96 --methods "$M"
