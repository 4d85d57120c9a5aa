#!/usr/bin/env bash
# Regenerates every committed CPU result of the embedded pair (results/README.md lists them): about
# 4 hours on a 2-core CPU in sequence (the leave-one-out runs and the reruns at the end about 40 min
# of it), less as its two halves side by side. The draft's and
# the head's training curves come from their training commands, not from here. Each line can also
# be run on its own.
#   bash scripts/cpu_results.sh            # everything
#   bash scripts/cpu_results.sh drafts     # only the files that compare the two drafters
#   bash scripts/cpu_results.sh rest       # only the studies with the pair's default drafter
# (the committed files were made with `drafts` and `rest` side by side, OMP_NUM_THREADS=1 each:
# every file records its thread count; ratios inside a file come from one run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
P="--pair embedded --results-dir results"
# Our methods with the causal-LM draft (@model) and with the feature head (@head), and the peers.
BOTH="ar,hf,hf-assisted,prompt-lookup,linear@model,fixed@model,dynatree@model,dynatree+lookup@model"
BOTH="$BOTH,linear@head,fixed@head,dynatree@head,dynatree+lookup@head,dynatree-paper@model"
# Baselines tuned on WikiText-2: the best fixed tree and the best Linear k of the ablation's sweep as
# run on 2026-12-05 (00:02 UTC); a sweep's winner varies from run to run (chapter 6 says why).
TUNED="fixed:depth=3:branch=3:threshold=0.05@model,linear:k=2@model"
PART="${1:-all}"
case "$PART" in all|drafts|rest) ;; *) echo "usage: $0 [all|drafts|rest]" >&2; exit 2;; esac
if [ "$PART" != rest ]; then
python -m dynatree_lib draft-report $P
python -m dynatree_lib costs $P
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 10 --warmup 2 --max-new-tokens 128 \
    --methods "$BOTH"
python -m dynatree_lib bench $P --dataset spec_bench --per-group 6 --warmup 2 --max-new-tokens 128 \
    --methods "ar,hf,hf-assisted,prompt-lookup,fixed@model,$TUNED,dynatree@model,dynatree-paper@model,linear@head,fixed@head,dynatree@head,dynatree+lookup@head"
python -m dynatree_lib bench $P --dataset pg19 --num-prompts 10 --warmup 2 --max-new-tokens 128 \
    --methods "$BOTH"
fi
[ "$PART" = drafts ] && exit 0
# The rest with the pair's default drafter (models.EMBEDDED_DRAFTER: the draft model).
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 10 --warmup 2 --max-new-tokens 128 \
    --no-pack --methods ar,dynatree --output results/nopack_wikitext2_embedded_cpu.json
# The ablation ladder, the fixed-tree sweep and Linear(k) on the same ten prompts in one run.
python -m dynatree_lib ablation $P --dataset wikitext2 --num-prompts 10 --warmup 1 --max-new-tokens 128 \
    --depths 3,5,8 --branches 1,2,3 --thresholds 0.05,0.2 --ks 2,4,8
python -m dynatree_lib sweep dynatree $P --dataset wikitext2 --num-prompts 10 --warmup 1 --max-new-tokens 128
S="ar,prompt-lookup,dynatree,default"
python -m dynatree_lib scaling length $P --dataset wikitext2 --grid 32,64,128,256 --num-prompts 10 --warmup 1 \
    --methods "$S"
python -m dynatree_lib scaling prompt $P --dataset wikitext2 --grid 32,64,128,256 --num-prompts 10 --warmup 1 \
    --max-new-tokens 64 --methods "$S"
python -m dynatree_lib explore $P --dataset wikitext2 --num-prompts 3 --warmup 1 --max-new-tokens 64
# The default method (DynaTree + lookup, priced) against AR, prompt lookup and the paper's DynaTree,
# greedy on Spec-Bench and WikiText-2 and sampling on Spec-Bench (results/multisource_*.json).
M="ar,prompt-lookup,dynatree@head,dynatree+lookup@head,default@head"
python -m dynatree_lib bench $P --dataset spec_bench --per-group 2 --warmup 1 --max-new-tokens 96 --methods "$M" \
    --output results/multisource_spec_bench_embedded_cpu.json
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 6 --warmup 1 --max-new-tokens 96 --methods "$M" \
    --output results/multisource_wikitext2_embedded_cpu.json
python -m dynatree_lib bench $P --dataset pg19 --num-prompts 10 --warmup 1 --max-new-tokens 96 --methods "$M" \
    --output results/multisource_pg19_embedded_cpu.json
python -m dynatree_lib bench $P --dataset spec_bench --per-group 2 --warmup 1 --max-new-tokens 96 --temperature 0.7 \
    --methods ar,dynatree@head,default@head \
    --output results/multisource_sampling_spec_bench_embedded_cpu_temperature0.7.json
# Leave-one-out: the default with each rule or source removed, with both drafters (chapter 6),
# then the multisource commands once more (``_rerun``: the run-to-run drift chapters 0 and 5 state).
L=""
for d in head model; do
  for v in default default-breadth default-depth default-pruning default-history default-pricing \
      default-lookup dynatree; do L="$L,$v@$d"; done
done
python -m dynatree_lib bench $P --dataset spec_bench --per-group 2 --warmup 1 --max-new-tokens 96 \
    --methods "ar,prompt-lookup$L" --output results/leave_one_out_spec_bench_embedded_cpu.json
python -m dynatree_lib bench $P --dataset spec_bench --per-group 2 --warmup 1 --max-new-tokens 96 --methods "$M" \
    --output results/multisource_spec_bench_embedded_cpu_rerun.json
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 10 --warmup 1 --max-new-tokens 96 \
    --methods "ar,prompt-lookup$L" --output results/leave_one_out_wikitext2_embedded_cpu.json
python -m dynatree_lib bench $P --dataset wikitext2 --num-prompts 6 --warmup 1 --max-new-tokens 96 --methods "$M" \
    --output results/multisource_wikitext2_embedded_cpu_rerun.json
