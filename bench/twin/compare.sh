#!/usr/bin/env bash
# Our DiT against its plain-PyTorch twin (bench/twin/dit_twin.py), side by side on this
# machine: the same model and weights (dit_bench --dump), batch, clip and threads, ROUNDS
# alternating rounds, the same malloc on both sides (MALLOC=tcmalloc, the default when
# installed, preloaded as scripts/demo.sh does; MALLOC=glibc for glibc's); prints each round's
# times and the C++/Python time ratio (mean, min, max).
# Needs Debian's python3-torch (PyTorch 1.13: the same kernels as our libtorch). Prints
# numbers; never fails on time.
#   bench/twin/compare.sh                        # small preset, batch 4, clip 4x16x16, 1 thread
#   PRESET=tiny ROUNDS=3 THREADS=2 bench/twin/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PRESET=${PRESET:-small} BATCH=${BATCH:-4} CLIP=${CLIP:-4x16x16} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-5}
SECS=${SECS:-2} PYTHON=${PYTHON:-/usr/bin/python3}
"${PYTHON}" -c 'import torch' 2>/dev/null || { echo "compare.sh: ${PYTHON} has no torch; apt-get install python3-torch" >&2; exit 2; }
bazel build --config=quiet //bench:dit_bench
bench=bazel-bin/bench/dit_bench
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
MALLOC=${MALLOC:-$([ -e "${tcmalloc}" ] && echo tcmalloc || echo glibc)}
[ "${MALLOC}" = tcmalloc ] && export LD_PRELOAD="${tcmalloc}"
dump=$(mktemp -d)
trap 'rm -rf "${dump}"' EXIT
flags=(--preset="${PRESET}" --batch="${BATCH}" --clip="${CLIP}" --threads="${THREADS}")
"${bench}" "${flags[@]}" --precision=fp32 --dump="${dump}" >/dev/null
"${PYTHON}" bench/twin/dit_twin.py numerics --dump="${dump}"
echo "${PRESET}, batch ${BATCH}, clip ${CLIP}, fp32, ${THREADS} thread(s), ${MALLOC} malloc, ${ROUNDS} rounds of ${SECS} s a pass"
printf '%-6s %-9s %12s %12s %8s\n' round pass "C++ ms" "Python ms" ratio
ratios_f=() ratios_b=()
for r in $(seq "${ROUNDS}"); do
  out=$("${bench}" "${flags[@]}" --precision=fp32 --seconds="${SECS}")
  cf=$(awk -v p="${PRESET}" '$1 == p && $3 == "forward" {print $6}' <<<"${out}")
  cb=$(awk -v p="${PRESET}" '$1 == p && $3 == "fwd+bwd" {print $6}' <<<"${out}")
  tw=$("${PYTHON}" bench/twin/dit_twin.py bench --dump="${dump}" --threads="${THREADS}" --seconds="${SECS}")
  pf=$(awk '$2 == "forward" {print $3 * 1000}' <<<"${tw}")
  pb=$(awk '$2 == "fwd+bwd" {print $3 * 1000}' <<<"${tw}")
  rf=$(awk -v a="${cf}" -v b="${pf}" 'BEGIN {printf "%.3f", a / b}')
  rb=$(awk -v a="${cb}" -v b="${pb}" 'BEGIN {printf "%.3f", a / b}')
  printf '%-6s %-9s %12.3f %12.3f %8s\n' "${r}" forward "${cf}" "${pf}" "${rf}"
  printf '%-6s %-9s %12.3f %12.3f %8s\n' "${r}" fwd+bwd "${cb}" "${pb}" "${rb}"
  ratios_f+=("${rf}"); ratios_b+=("${rb}")
  [ "${r}" = 1 ] && peak=$(grep -m1 "GEMM" <<<"${out}")
done
summary() { printf '%s\n' "${@:2}" | awk -v pass="$1" '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
  END {printf "%-9s C++/Python time: mean %.3f, min %.3f, max %.3f over %d rounds\n", pass, s / NR, lo, hi, NR}'; }
summary forward "${ratios_f[@]}"
summary fwd+bwd "${ratios_b[@]}"
echo "C++ ${peak}"
