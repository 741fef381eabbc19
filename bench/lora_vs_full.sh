#!/usr/bin/env bash
# LoRA against full fine-tuning on the shapes demo (a benchmark: prints numbers, never fails on
# time): ROUNDS alternating rounds of ITERS iterations of each (configs/shapes.flags and
# configs/shapes_lora.flags, 2 ranks, tcmalloc preloaded as the demo does), then each one's
# s/iteration (mean and range) and its memory per rank from `plan` (parameters, masters,
# moments, gradients). The held-out quality of the two comes from the demo itself:
#   ./scripts/demo.sh ; FLAGFILE=configs/shapes_lora.flags OUT=runs/demo_lora ./scripts/demo.sh
#
#   bench/lora_vs_full.sh [work dir]          ROUNDS (3), ITERS (20)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs/lora_vs_full}"
ROUNDS="${ROUNDS:-3}" ITERS="${ITERS:-20}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
bazel build --config=quiet //dancegrpo/tools:train //dancegrpo/tools:plan //world/tools:shapes_inputs
mkdir -p "${work}"
[ -f runs/shapes_inputs/dit.safetensors ] ||
  bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out=runs/shapes_inputs >/dev/null
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
preload=(); [ -e "${tcmalloc}" ] && preload=(-x LD_PRELOAD="${tcmalloc}")
declare -A flagfile=([full]=configs/shapes.flags [lora]=configs/shapes_lora.flags)
declare -A times=([full]="" [lora]="")
echo "lora_vs_full: ${ROUNDS} rounds of ${ITERS} iterations each, 2 ranks"
for r in $(seq "${ROUNDS}"); do
  for mode in full lora; do
    rm -rf "${work:?}/${mode}"
    mpirun -np 2 --oversubscribe --bind-to none "${preload[@]}" bazel-bin/dancegrpo/tools/train \
      --flagfile="${flagfile[${mode}]}" --iterations="${ITERS}" --checkpoint_every=0 --sample_every=0 \
      --save_trajectories=false --tensorboard=false --out="${work}/${mode}" >"${work}/${mode}.log" 2>&1 ||
      { tail -5 "${work}/${mode}.log"; exit 1; }
    s=$(grep -oE '^[0-9.]+ s/iteration' "${work}/${mode}.log" | cut -d' ' -f1)
    times[${mode}]+="${s} "
    echo "round ${r} ${mode}: ${s} s/iteration"
  done
done
for mode in full lora; do
  echo "${times[${mode}]}" | tr ' ' '\n' | awk -v m="${mode}" 'NF {s += $1; n++; if (n == 1 || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1}
    END {printf "%-4s s/iteration: mean %.3f, min %.3f, max %.3f over %d rounds\n", m, s / n, lo, hi, n}'
done
echo "memory per rank (plan, the demo's layout):"
PLAN=(--model=runs/shapes_inputs/config.json --latent_shape=3,4,10,10 --ranks=2 --prompts_per_iteration=8
      --group_size=8 --steps=10 --micro_batch=8 --timestep_fraction=1.0)
for mode in full lora; do
  extra=(); [ "${mode}" = lora ] && extra=(--lora_rank=8 --lora_alpha=16)
  bazel-bin/dancegrpo/tools/plan "${PLAN[@]}" "${extra[@]}" |
    awk -v m="${mode}" '/^plan:/ {sub(/^plan: [^(]*/, ""); head = $0}
      /^  (parameters \(held\)|fp32 masters|optimizer moments|gradients  |update  )/ {line = line sprintf("  %s", $0)}
      END {print m " " head; print line}' | sed 's/  \+/ /g'
done
