#!/usr/bin/env bash
# The learning study (issue 32): the demo at 5 training seeds under 2 BLAS kernel sets,
# OpenBLAS's generic ones (OPENBLAS_CORETYPE=Prescott) and the best this CPU runs (train's own
# choice: an OPENBLAS_CORETYPE in the environment is dropped for these runs), each evaluated on
# the 26 held-out prompts x 8 samples with noise seed 777 (not a training seed), plus the share of generated held-out clips that move the asked way (probe).
#   ./scripts/demo_study.sh      -> runs/study/{best,generic}_seed{1..5}/, runs/study.md
#   SEEDS="1 2" KERNELS=best ./scripts/demo_study.sh   (a part of it)
#   KERNELS="Haswell SkylakeX" ./scripts/demo_study.sh   (other OpenBLAS kernel sets, by OPENBLAS_CORETYPE name)
#   FLAGFILE=my.flags ./scripts/demo_study.sh   (another recipe; the demo's flags by default)
# A run whose checkpoint keeps an EMA of the weights (the demo's recipe, or any with --ema) is
# scored twice: its last weights, and their EMA (rows "..., EMA"; runs/study/*/ema/), which
# demo.sh reports.
# About 10 demos: with good kernels 5 x 8-10 minutes on 2 AVX-512 cores (both scorings); the generic ones 1.4x longer
# on a Zen 5 EPYC, 3-4x on Xeons and older EPYCs.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=(${SEEDS:-1 2 3 4 5})
kernels=(${KERNELS:-best generic})
./scripts/setup.sh >/dev/null
bazel build --config=quiet //world/tools:probe
rows=()
# score CHECKPOINT DIR LABEL SEED MINUTES [--ema]: the probe's direction for the checkpoint, and
# a table row from DIR/heldout_table.md.
score() {
  bazel-bin/world/tools/probe --checkpoint="$1" --split=heldout --seed=777 --samples=208 ${6:+"$6"} >"$2/probe.txt" 2>&1
  local asked row
  asked=$(sed -nE 's/.*in the asked one ([0-9]+)%.*/\1/p' "$2/probe.txt")
  row=$(awk -F'|' -v k="$3" -v s="$4" -v a="${asked}" -v m="$5" '
    /^\| [a-z_]/ && $4 ~ /[0-9]/ { name = $2; gsub(/ /, "", name); v[name] = $4 + 0 }
    END { printf "| %s | %s | %.4f | %.4f | %.4f | %.4f | %s%% | %s min |", s, k, v["alignment"], v["colour"], v["count"],
          v["motion"], a, m }' "$2/heldout_table.md")
  echo "${row}"
  rows+=("${row}")
}
for k in "${kernels[@]}"; do
  for s in "${seeds[@]}"; do
    out="runs/study/${k}_seed${s}"
    start=$(date +%s)
    case "${k}" in
      best) core=() ;;                                 # train chooses
      generic) core=(OPENBLAS_CORETYPE=Prescott) ;;
      *) core=(OPENBLAS_CORETYPE="${k}") ;;            # a kernel set by name (checked by train)
    esac
    mkdir -p runs/study
    env -u OPENBLAS_CORETYPE "${core[@]}" EVAL_EMA=0 EVAL_SAMPLES=8 EVAL_SEED=777 SEED="${s}" OUT="${out}" ./scripts/demo.sh \
      >"${out}.log" 2>&1
    minutes=$(( ($(date +%s) - start + 30) / 60 ))
    final=$(ls "${out}"/checkpoints/ckpt-*.h5 | tail -1)
    # a recipe with --keep_best: the checkpoint demo.sh scored, the one after the best window
    kept=""
    if [ -e "${out}/checkpoints/best.h5" ]; then
      final="${out}/checkpoints/best.h5"
      kept=", best.h5 = $(bazel-bin/dancegrpo/tools/inspect "${final}" | sed -nE '1s/.*(before iteration [0-9]+).*/\1/p')"
    fi
    blas=$(grep -o 'BLAS: OpenBLAS [A-Za-z0-9]* kernels' "${out}.log" | head -1 | awk '{print $3}')
    score "${final}" "${out}" "${k} (${blas})${kept}" "${s}" "${minutes}" ""
    if bazel-bin/dancegrpo/tools/inspect "${final}" | sed -n 2p | grep -q 'EMA'; then  # the same checkpoint's EMA
      EVAL_EMA=1 EVAL_SAMPLES=8 EVAL_SEED=777 ./scripts/demo_evaluate.sh "${final}" "${out}/ema" >"${out}/ema.log" 2>&1
      score "${final}" "${out}/ema" "${k} (${blas})${kept}, EMA" "${s}" "${minutes}" --ema
    fi
  done
done
{
  echo "| seed | kernels | alignment | colour | count | motion | moving the asked way | time |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  printf '%s\n' "${rows[@]}" | awk -F'|' '{ g = ($3 ~ /EMA/) ? "EMA weights" : "weights"; a = $4 + 0; s[g] += a; n[g]++
      if (n[g] == 1 || a < lo[g]) lo[g] = a; if (n[g] == 1 || a > hi[g]) hi[g] = a }
    END { for (g in n) printf "\nalignment, %s of the %d runs: mean %.4f, range %.4f - %.4f\n", g, n[g], s[g] / n[g], lo[g], hi[g] }'
} | tee runs/study.md
