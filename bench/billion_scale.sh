#!/usr/bin/env bash
# Real GRPO steps at billion scale on one CPU machine (a benchmark: it prints numbers and
# never passes or fails on time). Four ranks, ZeRO-3, activation checkpointing:
#   1. wan2.1-1.3b, every block in the rollout, the last blocks trained, sp=1;
#   2. the same with sp=2;
#   3. a 14B-width slice: wan2.1-14b cut to 2 of its 40 blocks (dim 5120, ffn 13824, 40 heads),
#      both blocks (and the head) trained in bf16, the embeddings frozen (in fp32 it does not
#      fit 6 GB a rank: plan says so and names bf16 as the fix);
#   4. wan2.1-1.3b with LoRA r=32 on every block (attention and FFN linears), the frozen base
#      sharded by ZeRO-3, bf16: what full fine-tuning cannot fit here.
# For each: s/iteration, and every rank's measured peak RSS per phase beside `plan`'s
# prediction. Then the configurations that cannot fit here, refused up front by plan and
# by train (full 1.3B fine-tuning; ZeRO-2 of the runs above).
#
#   bench/billion_scale.sh [work dir]      (about 10 minutes on 2 cores with OpenBLAS's
#                                           SkylakeX kernels, see below; 24 GB of memory)
# Knobs (environment): RUNS (the names below, default all), REFUSALS_ONLY (set: only the refusals, a minute), RANKS (4), ITERS (3), TRAINABLE_13B (blocks.20-29,head), LATENT (16,1,8,8).
# The weights are random (no checkpoint is shipped); Wan's zero-initialised head is trained too,
# so that the blocks receive gradients from the second iteration on.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/billion_scale}"
RANKS="${RANKS:-4}"
ITERS="${ITERS:-3}"
TRAINABLE_13B="${TRAINABLE_13B:-blocks.20-29,head}"
LATENT="${LATENT:-16,1,8,8}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Debian's OpenBLAS picks generic kernels on some Xeons (docs/experiments/2026-11-30-openblas-core.md);
# on a CPU with AVX-512 the SkylakeX kernels are 6x faster and give the same memory numbers.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
echo "billion_scale: ${RANKS} ranks, ${ITERS} iterations each, latents ${LATENT}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-default}"

bazel build -c opt //dancegrpo/tools:train //dancegrpo/tools:plan //tests/fixtures:make_fixtures >/dev/null 2>&1 ||
  bazel build -c opt //dancegrpo/tools:train //dancegrpo/tools:plan //tests/fixtures:make_fixtures
bin="$(bazel info -c opt bazel-bin 2>/dev/null)"
train="${bin}/dancegrpo/tools/train"
plan="${bin}/dancegrpo/tools/plan"
mkdir -p "${work}"
# Prompts and umT5-width (4096) embeddings, and a reward on the latents (no decoder).
"${bin}/tests/fixtures/make_fixtures" --out="${work}/inputs" --text_dim=4096 >/dev/null
cat >"${work}/wan14b_2blocks.json" <<'EOF'
{"_class_name": "WanModel", "model_type": "t2v", "dim": 5120, "ffn_dim": 13824, "num_heads": 40,
 "num_layers": 2, "in_dim": 16, "out_dim": 16, "text_len": 512, "text_dim": 4096, "freq_dim": 256,
 "patch_size": [1, 2, 2], "eps": 1e-06, "qk_norm": true, "cross_attn_norm": true, "window_size": [-1, -1]}
EOF

COMMON=(--embeddings="${work}/inputs/embeddings.h5" --prompts="${work}/inputs/prompts.txt"
        --rewards="torchscript=${work}/inputs/latent_reward.pt" --decoder=none --latent_shape="${LATENT}"
        --prompts_per_iteration=2 --group_size=2 --steps=3 --timestep_fraction=0.67 --micro_batch=1
        --zero_stage=3 --activation_checkpointing --lr=1e-5 --clip_range=0.2 --eta=0.7 --sample_every=0
        --watchdog_seconds=1800 --iterations="${ITERS}")

run() {  # name, then flags
  local name="$1"; shift
  echo
  echo "=== ${name}"
  "${plan}" --ranks="${RANKS}" "${COMMON[@]}" "$@" | sed -n '/^plan/,/^      /p;/^phases/,$p' || true
  rm -rf "${work:?}/${name}"
  mpirun -np "${RANKS}" --oversubscribe --bind-to none "${train}" --out="${work}/${name}" "${COMMON[@]}" "$@" \
    >"${work}/${name}.log" 2>&1 || { tail -20 "${work}/${name}.log"; return 0; }
  grep -E "^iter |s/iteration|^memory per rank|^  (phase|load|rollout|update|checkpoint) " "${work}/${name}.log"
}

RUNS="${RUNS:-wan13b_sp1 wan13b_sp2 wan14b_width_2blocks wan13b_lora_r32}"
want() { [[ -z "${REFUSALS_ONLY:-}" && " ${RUNS} " == *" $1 "* ]]; }
if want wan13b_sp1; then run wan13b_sp1 --model=wan2.1-1.3b --trainable="${TRAINABLE_13B}" --sp=1; fi
if want wan13b_sp2; then run wan13b_sp2 --model=wan2.1-1.3b --trainable="${TRAINABLE_13B}" --sp=2; fi
if want wan14b_width_2blocks; then
  run wan14b_width_2blocks --model="${work}/wan14b_2blocks.json" --trainable=blocks.0-1,head --sp=1 --precision=bf16
fi
if want wan13b_lora_r32; then
  # The random weights have Wan's zero head: an adapter on head.head lets the blocks' adapters get
  # gradients from the second iteration on (a real checkpoint's head is not zero).
  run wan13b_lora_r32 --model=wan2.1-1.3b --lora_rank=32 --lora_alpha=64 --sp=1 --precision=bf16 --lr=1e-4 \
    --lora_targets=self_attn.q,self_attn.k,self_attn.v,self_attn.o,cross_attn.q,cross_attn.k,cross_attn.v,cross_attn.o,ffn.0,ffn.2,head.head
fi

echo
echo "=== refused up front (plan exits 3, train exits before loading anything)"
refuse() {  # name, then flags
  local name="$1"; shift
  local rc=0
  "${plan}" --ranks="${RANKS}" "${COMMON[@]}" "$@" >"${work}/${name}.plan" 2>&1 || rc=$?
  echo "--- ${name}: plan exit ${rc}: $(grep -E 'cheapest|no layout' "${work}/${name}.plan" | sed 's/^ *//')"
  rc=0
  mpirun -np "${RANKS}" --oversubscribe --bind-to none "${train}" --out="${work}/${name}" "${COMMON[@]}" "$@" \
    >"${work}/${name}.log" 2>&1 || rc=$?
  echo "    train exit ${rc}: $(grep -m1 -o 'this run does not fit.*' "${work}/${name}.log" | cut -c1-400)"
}
refuse full_13b_zero3 --model=wan2.1-1.3b --sp=1
refuse full_13b_bf16 --model=wan2.1-1.3b --sp=1 --precision=bf16
refuse full_13b_zero2 --model=wan2.1-1.3b --sp=1 --zero_stage=2
refuse zero2_13b_partial --model=wan2.1-1.3b --trainable="${TRAINABLE_13B}" --zero_stage=2
refuse zero2_14b_width --model="${work}/wan14b_2blocks.json" --trainable=blocks.0-1,head --zero_stage=2 --precision=bf16
refuse fp32_14b_width --model="${work}/wan14b_2blocks.json" --trainable=blocks.0-1,head
