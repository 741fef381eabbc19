#!/usr/bin/env bash
# The demo's held-out evaluation of one checkpoint: base against trained on the 26 held-out
# prompts of the shapes world, per reward, into OUT/heldout_table.md and OUT's pictures
# (eval_{base,trained}.{png,gif}, base_vs_trained.gif). scripts/demo.sh runs it after training.
#   scripts/demo_evaluate.sh CHECKPOINT OUT     (after scripts/demo.sh has built the tools)
# Environment: EVAL_SAMPLES (samples per prompt, 4), EVAL_SEED (noise seed, 12345),
# EVAL_EMA (1: the checkpoint's EMA weights, 0: its weights; by default the EMA when the
# checkpoint keeps one: a run trained with --ema), PRECISION (fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 CHECKPOINT OUT" >&2; exit 2; }
ema=()
use_ema="${EVAL_EMA:-}"
if [ -z "${use_ema}" ]; then  # inspect's second line: "N parameters in M tensors, optimizer moments, EMA"
  use_ema=0
  bazel-bin/dancegrpo/tools/inspect "$1" | sed -n 2p | grep -q 'EMA' && use_ema=1
fi
[ "${use_ema}" = 1 ] && ema=(--ema)
echo "held-out evaluation of $1 ($([ "${use_ema}" = 1 ] && echo "its EMA weights" || echo "its weights"))"
mkdir -p "$2"
bazel-bin/dancegrpo/tools/evaluate --model=runs/shapes_inputs/config.json --weights=runs/shapes_inputs/dit.safetensors \
  --embeddings=runs/shapes_inputs/embeddings.h5 --latent_shape=3,4,10,10 --prompts=runs/shapes_inputs/heldout.jsonl \
  --rewards=alignment,colour,count,motion,motion_quality,jpeg --precision="${PRECISION:-fp32}" \
  --eta=0.3 --sde_window_size=0 --micro_batch=32 --samples_per_prompt="${EVAL_SAMPLES:-4}" --eval_seed="${EVAL_SEED:-12345}" \
  "${ema[@]}" --checkpoint="$1" --out="$2" | tee "$2/heldout_table.md"
