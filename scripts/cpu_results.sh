#!/usr/bin/env bash
# Regenerates every committed CPU result of the embedded pair (results/README.md lists them).
# About 50 minutes on a 2-core CPU (the draft's training curves come from train_draft, not from here). Each line can also be run on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
P="--pair embedded"
python -m dynatree_lib draft-report $P --output results/embedded_draft_quality.json
python -m dynatree_lib costs $P --output results/costs_embedded_cpu.json
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 10 --warmup 2 --max-new-tokens 128 \
    --output results/main_wikitext2_embedded_cpu.json
python -m dynatree_lib bench $P --dataset pg19 --num-prompts 10 --warmup 2 --max-new-tokens 128 \
    --output results/main_pg19_embedded_cpu.json
python -m dynatree_lib ablation $P --dataset wikitext2 --num-prompts 5 --warmup 1 --max-new-tokens 128 \
    --output results/ablation_wikitext2_embedded_cpu.json
python -m dynatree_lib sweep fixed $P --dataset wikitext2 --depths 3,5,8 --branches 1,2,3 --thresholds 0.05,0.2 \
    --num-prompts 5 --warmup 1 --max-new-tokens 128 --output results/sweep_fixed_wikitext2_embedded_cpu.json
python -m dynatree_lib sweep dynatree $P --dataset wikitext2 --num-prompts 5 --warmup 1 --max-new-tokens 128 \
    --output results/sensitivity_wikitext2_embedded_cpu.json
python -m dynatree_lib scaling length $P --dataset wikitext2 --grid 32,64,128,256 --num-prompts 3 --warmup 1 \
    --output results/scaling_length_wikitext2_embedded_cpu.json
python -m dynatree_lib scaling prompt $P --dataset wikitext2 --grid 64,128,256,512 --num-prompts 3 --warmup 1 \
    --max-new-tokens 128 --output results/scaling_prompt_wikitext2_embedded_cpu.json
