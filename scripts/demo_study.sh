#!/usr/bin/env bash
# The learning study (issue 32): the demo at 5 training seeds under 2 BLAS kernel sets,
# OpenBLAS's generic ones (OPENBLAS_CORETYPE=Prescott) and the best this CPU runs (train's
# default), each evaluated on the 26 held-out prompts x 8 samples with noise seed 777 (not a
# training seed), plus the share of generated held-out clips that move the asked way (probe).
#   ./scripts/demo_study.sh      -> runs/study/{best,generic}_seed{1..5}/, runs/study.md
#   SEEDS="1 2" KERNELS=best ./scripts/demo_study.sh   (a part of it)
# About 10 demos: with good kernels 5 x 5-11 minutes on 2 cores, the generic ones 3-4x longer.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=(${SEEDS:-1 2 3 4 5})
kernels=(${KERNELS:-best generic})
./scripts/setup.sh >/dev/null
bazel build --config=quiet //world/tools:probe
rows=()
for k in "${kernels[@]}"; do
  for s in "${seeds[@]}"; do
    out="runs/study/${k}_seed${s}"
    start=$(date +%s)
    if [ "${k}" = generic ]; then
      OPENBLAS_CORETYPE=Prescott EVAL_SAMPLES=8 EVAL_SEED=777 SEED="${s}" OUT="${out}" ./scripts/demo.sh >"${out}.log" 2>&1
    else
      EVAL_SAMPLES=8 EVAL_SEED=777 SEED="${s}" OUT="${out}" ./scripts/demo.sh >"${out}.log" 2>&1
    fi
    minutes=$(( ($(date +%s) - start + 30) / 60 ))
    final=$(ls "${out}"/checkpoints/ckpt-*.h5 | tail -1)
    bazel-bin/world/tools/probe --checkpoint="${final}" --split=heldout --seed=777 --samples=208 >"${out}/probe.txt" 2>&1
    asked=$(sed -nE 's/.*in the asked one ([0-9]+)%.*/\1/p' "${out}/probe.txt")
    blas=$(grep -o 'BLAS: OpenBLAS [A-Za-z0-9]* kernels' "${out}.log" | head -1 | awk '{print $3}')
    row=$(awk -F'|' -v k="${k} (${blas})" -v s="${s}" -v a="${asked}" -v m="${minutes}" '
      /^\| [a-z_]/ && $4 ~ /[0-9]/ { name = $2; gsub(/ /, "", name); v[name] = $4 + 0 }
      END { printf "| %s | %s | %.4f | %.4f | %.4f | %.4f | %s%% | %s min |", s, k, v["alignment"], v["colour"], v["count"],
            v["motion"], a, m }' "${out}/heldout_table.md")
    echo "${row}"
    rows+=("${row}")
  done
done
{
  echo "| seed | kernels | alignment | colour | count | motion | moving the asked way | time |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  printf '%s\n' "${rows[@]}" | awk -F'|' '{ a = $4 + 0; s += a; n++; if (n == 1 || a < lo) lo = a; if (n == 1 || a > hi) hi = a }
    END { printf "\nalignment over the %d runs: mean %.4f, range %.4f - %.4f\n", n, s / n, lo, hi }'
} | tee runs/study.md
