#!/usr/bin/env bash
# Sequence parallelism for any head count, measured: Ulysses 4, ring 4 and USP (Ulysses 2 x
# ring 2) on 4 CPU ranks, for DiT blocks of Wan2.1-1.3B's width (12 heads) on one long
# sequence. Per layout: tokens/s of a forward without gradients (the rollout's) and of forward +
# backward (the update's), and the worst rank's peak RSS above its RSS at the start of each,
# beside the planner's count of the same (plan's activation terms, models/dit/dit_family.cc).
#   bench/usp_bench.sh                     (4 ranks, 4x64x64 latents = 4096 tokens, 1 block; ~6 min)
#   LATENT=4,32,32 REPEATS=2 bench/usp_bench.sh   (1024 tokens, a minute)
#   WAN=1 bench/usp_bench.sh               (then a real GRPO iteration at Wan2.1-1.3B's shapes,
#                                           sp 8 on 8 ranks, RSS per rank against plan: part 2)
# Knobs: RANKS (4), LATENT (F,H,W), LAYERS (1), PRECISION (fp32|bf16), REPEATS (1), LAYOUTS
# (Ulysses degrees, default "4 1 2"); part 2: WAN_LATENT, WAN_ULYSSES, WAN_TRAINABLE, WORK.
# A benchmark: it prints numbers and never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
RANKS="${RANKS:-4}"
LATENT="${LATENT:-4,64,64}"
LAYERS="${LAYERS:-1}"
PRECISION="${PRECISION:-fp32}"
REPEATS="${REPEATS:-1}"
LAYOUTS="${LAYOUTS:-4 1 2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
bazel build --config=quiet //bench:usp_bench
if [[ -z "${WAN_ONLY:-}" ]]; then
  echo "usp_bench: ${RANKS} ranks (1 thread each), Wan2.1-1.3B width, ${LAYERS} block(s), latents ${LATENT}, ${PRECISION}"
  echo "| layout             | tokens | fwd tok/s | f+b tok/s | fwd peak RSS | fwd plan    | f+b peak RSS | f+b plan    |"
  echo "|--------------------|--------|-----------|-----------|--------------|-------------|--------------|-------------|"
  for u in ${LAYOUTS}; do
    OMP_NUM_THREADS=1 mpirun -np "${RANKS}" --oversubscribe --bind-to none -x OMP_NUM_THREADS \
      bazel-bin/bench/usp_bench --ulysses="${u}" --latent="${LATENT}" --layers="${LAYERS}" \
      --precision="${PRECISION}" --repeats="${REPEATS}"
  done
fi

# Part 2 (WAN=1, or WAN_ONLY=1 for it alone): a real GRPO iteration of Wan2.1-1.3B's shapes (30
# blocks, 12 heads; 64 text tokens instead of 512, which changes no parameter and keeps the
# cross-attention's cost down on 2 cores) at sp = 8 on 8 oversubscribed ranks: Ulysses 4 x
# ring 2 by default, ZeRO-3 with checkpointing, the last blocks trained. train prints each
# rank's peak RSS per phase beside plan's.
if [[ -n "${WAN:-}${WAN_ONLY:-}" ]]; then
  work="${WORK:-runs/usp_bench}"
  mkdir -p "${work}"
  bazel build --config=quiet //dancegrpo/tools:train //dancegrpo/tools:plan //tests/fixtures:make_fixtures
  bazel-bin/tests/fixtures/make_fixtures --out="${work}/inputs" --text_dim=4096 >/dev/null
  cat >"${work}/wan13b_text64.json" <<'JSON'
{"_class_name": "WanModel", "model_type": "t2v", "dim": 1536, "ffn_dim": 8960, "num_heads": 12,
 "num_layers": 30, "in_dim": 16, "out_dim": 16, "text_len": 64, "text_dim": 4096, "freq_dim": 256,
 "patch_size": [1, 2, 2], "eps": 1e-06, "qk_norm": true, "cross_attn_norm": true, "window_size": [-1, -1]}
JSON
  flags=(--model="${work}/wan13b_text64.json" --embeddings="${work}/inputs/embeddings.h5"
         --prompts="${work}/inputs/prompts.txt" --rewards="torchscript=${work}/inputs/latent_reward.pt"
         --decoder=none --latent_shape="${WAN_LATENT:-16,2,8,8}" --prompts_per_iteration=1 --group_size=2 --steps=3
         --timestep_fraction=0.67 --micro_batch=1 --zero_stage=3 --activation_checkpointing --sp=8
         --ulysses="${WAN_ULYSSES:-0}" --trainable="${WAN_TRAINABLE:-blocks.26-29,head}" --lr=1e-5 --clip_range=0.2
         --eta=0.7 --sample_every=0 --watchdog_seconds=3600 --iterations=1)
  echo
  echo "=== Wan2.1-1.3B shapes, sp 8 on 8 ranks, latents ${WAN_LATENT:-16,2,8,8}"
  bazel-bin/dancegrpo/tools/plan --ranks=8 "${flags[@]}" | sed -n '/^plan/,/^      /p;/sequence-parallel/p;/^phases/,$p'
  rm -rf "${work}/wan13b_sp8"
  mpirun -np 8 --oversubscribe --bind-to none bazel-bin/dancegrpo/tools/train --out="${work}/wan13b_sp8" "${flags[@]}" \
    >"${work}/wan13b_sp8.log" 2>&1 || { tail -20 "${work}/wan13b_sp8.log"; exit 1; }
  grep -E "^train:|^iter |s/iteration|^memory per rank|^  (phase|load|rollout|update|checkpoint) " "${work}/wan13b_sp8.log" |
    sed -E 's/^(train: .{0,160}).*/\1.../'
fi
