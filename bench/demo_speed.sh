#!/usr/bin/env bash
# Seconds per iteration of the shapes demo (configs/shapes.flags, 2 ranks x 1 thread), this
# build against another train binary (BEFORE, e.g. one built from an older commit), ROUNDS
# alternating rounds of ITERS iterations (the first SKIP skipped), each under glibc's malloc
# and with tcmalloc preloaded (as scripts/demo.sh runs it). Prints numbers; never fails on time.
#   bench/demo_speed.sh                              # this build alone
#   BEFORE=/tmp/train_old ROUNDS=3 bench/demo_speed.sh
# An older binary: git worktree add /tmp/old <commit> && (cd /tmp/old && bazel build //dancegrpo/tools:train)
# and BEFORE=/tmp/old/bazel-bin/dancegrpo/tools/train.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} ITERS=${ITERS:-30} SKIP=${SKIP:-2} NP=${NP:-2}
[ -z "${BEFORE:-}" ] || [ -x "${BEFORE}" ] ||
  { echo "demo_speed.sh: BEFORE=${BEFORE} is not an executable train binary (see the comment at the top)" >&2; exit 2; }
bazel build --config=quiet //dancegrpo/tools:train //world/tools:shapes_inputs
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
cp bazel-bin/dancegrpo/tools/train "${work}/train_now"
builds=(now)
[ -n "${BEFORE:-}" ] && { cp "${BEFORE}" "${work}/train_before"; builds=(before now); }
inputs="${work}/inputs"
bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out="${inputs}" >/dev/null
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
mpi=(mpirun -np "${NP}" --oversubscribe --bind-to none)
[ -n "${OPENBLAS_CORETYPE:-}" ] && mpi+=(-x OPENBLAS_CORETYPE)
echo "shapes demo, ${NP} ranks, ${ROUNDS} rounds of ${ITERS} iterations (first ${SKIP} skipped)," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
printf '%-7s %-6s %-9s %8s\n' build round malloc "s/it"
for r in $(seq "${ROUNDS}"); do
  for b in "${builds[@]}"; do
    for m in glibc tcmalloc; do
      preload=(); [ "${m}" = tcmalloc ] && preload=(-x LD_PRELOAD="${tcmalloc}")
      rm -rf "${work}/run"
      "${mpi[@]}" "${preload[@]}" "${work}/train_${b}" --flagfile=configs/shapes.flags --model="${inputs}/config.json" \
        --weights="${inputs}/dit.safetensors" --embeddings="${inputs}/embeddings.h5" --prompts="${inputs}/train.jsonl" \
        --iterations="${ITERS}" --checkpoint_every=0 --sample_every=0 --out="${work}/run" >"${work}/log" 2>&1 ||
        { cat "${work}/log"; exit 1; }
      s=$(sed -E 's/.*"seconds": ([0-9.e+-]+).*/\1/' "${work}/run/metrics.jsonl" |
          awk -v skip="${SKIP}" 'NR > skip {s += $1; n++} END {printf "%.3f", s / n}')
      printf '%-7s %-6s %-9s %8s\n' "${b}" "${r}" "${m}" "${s}"
    done
  done
done
