#!/usr/bin/env bash
# Rebuilds the committed embedded draft, dynatree_lib/models/weights/embedded_draft.pt (fixed seed).
# About 2 hours on a 2-core CPU; labels are cached under ~/.cache/dynatree, so a rerun
# spends its time on the distillation steps only.
set -euo pipefail
cd "$(dirname "$0")/.."
W=dynatree_lib/models/weights/embedded_draft.pt
# Stage 1: all training text labelled once, 1,200 greedy continuations of 192 tokens, 2,400 steps.
python -m dynatree_lib.train.draft --output "$W" --curve results/draft_training.json
# Stage 2: 1,100 continuations of 64 tokens after 192-token prompts (the target loops in long
# ones), 600 steps at a lower learning rate from stage 1's weights.
python -m dynatree_lib.train.draft --init-from "$W" --on-policy 1100 --on-policy-new-tokens 64 \
    --on-policy-weight 0.6 --steps 600 --lr 2e-4 --output "$W" --curve results/draft_training_stage2.json
