#!/usr/bin/env bash
# Which malloc for train: glibc as it comes, glibc with its trim and mmap thresholds raised
# (freed tensors stay in the heap instead of going back to the OS and faulting back in),
# jemalloc without decay, and tcmalloc; each preloaded into the same binaries. Alternating
# rounds of (a) dit_bench, small preset, forward and forward+backward, and (b) the shapes demo's
# GRPO iteration (ITERS iterations on 2 ranks). Prints numbers; never fails on time.
#   bench/allocators.sh                 ROUNDS=3 ITERS=30
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} ITERS=${ITERS:-30}
L=/usr/lib/x86_64-linux-gnu
for lib in libjemalloc.so.2 libtcmalloc_minimal.so.4; do
  [ -e "${L}/${lib}" ] || { echo "allocators.sh: ${L}/${lib} missing: apt-get install libjemalloc2 libtcmalloc-minimal4" >&2; exit 2; }
done
bazel build --config=quiet //bench:dit_bench //dancegrpo/tools:train //world/tools:shapes_inputs
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out="${work}/inputs" >/dev/null
sed "s#runs/shapes_inputs#${work}/inputs#" configs/shapes.flags >"${work}/flags"
names=(glibc glibc-tuned jemalloc-nodecay tcmalloc)
envs=("" "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"
      "LD_PRELOAD=${L}/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1"
      "LD_PRELOAD=${L}/libtcmalloc_minimal.so.4")
printf '%-17s %-6s %12s %12s %12s\n' allocator round "fwd ms" "fwd+bwd ms" "demo s/it"
for r in $(seq "${ROUNDS}"); do
  for i in "${!names[@]}"; do
    read -r -a e <<<"${envs[$i]}"
    out=$(env "${e[@]}" bazel-bin/bench/dit_bench --preset=small --precision=fp32 --batch=4 --clip=4x16x16 --threads=1 --seconds=3)
    f=$(awk '$1 == "small" && $3 == "forward" {print $6}' <<<"${out}")
    b=$(awk '$1 == "small" && $3 == "fwd+bwd" {print $6}' <<<"${out}")
    x=()
    for kv in "${e[@]}"; do x+=(-x "${kv}"); done
    rm -rf "${work}/run"
    s=$(mpirun -np 2 --oversubscribe --bind-to none "${x[@]}" bazel-bin/dancegrpo/tools/train --flagfile="${work}/flags" \
          --iterations="${ITERS}" --checkpoint_every=0 --sample_every=0 --save_trajectories=false --tensorboard=false \
          --out="${work}/run" 2>&1 | awk '/s\/iteration/ {print $1}')
    printf '%-17s %-6s %12s %12s %12s\n' "${names[$i]}" "${r}" "${f}" "${b}" "${s}"
  done
done
