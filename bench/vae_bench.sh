#!/usr/bin/env bash
# The native Wan2.1 VAE decoder (//bench:vae_bench) beside the PyTorch eager twin of Wan's own
# vae.py (bench/twin/wan_vae_twin.py), Wan2.1's layout (dim 96, z_dim 16), random weights, one
# process per row: time per decode and the decode's peak RSS, and the C++/Python ratios; then
# bf16 and tiled rows of ours with plan's decode term (measured/plan). Prints numbers; never
# fails on time. Needs Debian's python3-torch (the same kernels as our libtorch) and Wan2.1's
# vae.py (WAN_VAE_PY; e.g. `git -C <Wan2.1 clone> show HEAD:wan/modules/vae.py > /tmp/wan_vae.py`).
# Each row runs ours and the twin REPEATS times, alternating (a shared machine's speed drifts by
# 10-20% over minutes), and prints the least time and least peak RSS of each. 21,8,8 is Wan's
# clip length (81 frames) at a small size.
#   WAN_VAE_PY=/tmp/wan_vae.py bench/vae_bench.sh                       # about 12 minutes
#   SIZES="2,8,8 3,12,12" REPEATS=1 THREADS=2 WAN_VAE_PY=/tmp/wan_vae.py bench/vae_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"2,8,8 3,12,12 5,16,16 21,8,8"} REPEATS=${REPEATS:-3} THREADS=${THREADS:-1} PYTHON=${PYTHON:-/usr/bin/python3}
: "${WAN_VAE_PY:?set WAN_VAE_PY to the path of wan/modules/vae.py of Wan2.1}"
bazel build --config=quiet //bench:vae_bench
export OMP_NUM_THREADS="${THREADS}"
# "...: 3.01 s/decode, decode RSS 437 MB, ..." -> the seconds or the MB
field() { if [ "$2" = seconds ]; then sed -E 's/.*: ([0-9.]+) s\/decode.*/\1/' <<<"$1"; else sed -E 's/.*decode RSS ([0-9]+) MB.*/\1/' <<<"$1"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
least() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
printf '%-10s %10s %10s %7s %12s %12s %7s\n' latents "C++ s" "Python s" ratio "C++ MB" "Python MB" ratio
for s in ${SIZES}; do
  t1="" m1="" t2="" m2=""
  for ((r = 0; r < REPEATS; ++r)); do
    ours=$(bazel-bin/bench/vae_bench --latents="${s}" | tail -1)
    twin=$("${PYTHON}" bench/twin/wan_vae_twin.py --wan_vae_py="${WAN_VAE_PY}" --latents="${s}" --threads="${THREADS}" | tail -1)
    t1=$(least "${t1}" "$(field "${ours}" seconds)"); m1=$(least "${m1}" "$(field "${ours}" rss)")
    t2=$(least "${t2}" "$(field "${twin}" seconds)"); m2=$(least "${m2}" "$(field "${twin}" rss)")
  done
  printf '%-10s %10s %10s %7.2f %12s %12s %7.2f\n' "${s}" "${t1}" "${t2}" "$(ratio "${t1}" "${t2}")" "${m1}" "${m2}" \
    "$(ratio "${m1}" "${m2}")"
  echo "  ours: ${ours#vae_bench }"
done
mid=$(awk '{print $2}' <<<"${SIZES}"); mid=${mid:-${SIZES%% *}}
# glibc's peak RSS follows its heap layout as much as what is live (a freed block moves its
# mmap threshold up, later blocks come from the heap): the same decode moves by 5-10% with the
# order of frees. With a fixed threshold, in both processes, large blocks go back when freed.
echo "live memory at ${mid}, MALLOC_MMAP_THRESHOLD_=1048576 in both processes:"
ours=$(MALLOC_MMAP_THRESHOLD_=1048576 bazel-bin/bench/vae_bench --latents="${mid}" | tail -1)
twin=$(MALLOC_MMAP_THRESHOLD_=1048576 "${PYTHON}" bench/twin/wan_vae_twin.py --wan_vae_py="${WAN_VAE_PY}" \
  --latents="${mid}" --threads="${THREADS}" | tail -1)
printf '  C++ %s MB, Python %s MB, ratio %.2f\n' "$(field "${ours}" rss)" "$(field "${twin}" rss)" \
  "$(ratio "$(field "${ours}" rss)" "$(field "${twin}" rss)")"
for extra in "--dtype=bf16" "--tile=64 --stride=48" "--dtype=bf16 --tile=64 --stride=48"; do
  bazel-bin/bench/vae_bench --latents="${mid}" ${extra} | tail -1
done
