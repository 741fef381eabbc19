#!/usr/bin/env bash
# The demo at 3 training seeds (SEEDS to change them), then each held-out reward's mean and
# range over the seeds: how much of the demo's table is the seed. About 3x the demo's time.
#   ./scripts/demo_seeds.sh            -> runs/demo_seed{1,2,3}/, runs/demo_seeds.md
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=(${SEEDS:-1 2 3})
for s in "${seeds[@]}"; do
  SEED="${s}" OUT="runs/demo_seed${s}" ./scripts/demo.sh
done
tables=()
for s in "${seeds[@]}"; do tables+=("runs/demo_seed${s}/heldout_table.md"); done
# Rows "| reward | base | trained | change |" of each table -> mean and [min, max] of trained.
awk -F'|' -v n="${#seeds[@]}" '
  /^\| [a-z_]/ && $3 ~ /[0-9]/ {
    name = $2; gsub(/ /, "", name); t = $4 + 0
    if (!(name in sum)) { order[++k] = name; base[name] = $3 + 0; lo[name] = t; hi[name] = t }
    sum[name] += t; if (t < lo[name]) lo[name] = t; if (t > hi[name]) hi[name] = t
  }
  END {
    printf "| reward | base | trained, mean of %d seeds | change | range over the seeds |\n|---|---|---|---|---|\n", n
    for (i = 1; i <= k; ++i) { r = order[i]; m = sum[r] / n
      printf "| %s | %.4f | %.4f | %+.1f%% | %.4f - %.4f |\n", r, base[r], m, 100 * (m - base[r]) / base[r], lo[r], hi[r] }
  }' "${tables[@]}" | tee runs/demo_seeds.md
