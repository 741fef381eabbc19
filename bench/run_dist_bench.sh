#!/usr/bin/env bash
# Per-iteration time and communication share of a GRPO iteration at 1, 2 and 4 ranks.
#   bench/run_dist_bench.sh [extra dist_bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build --config=quiet //bench:dist_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
for np in 1 2 4; do
  mpirun -np "${np}" --oversubscribe --bind-to none bazel-bin/bench/dist_bench "$@"
done
mpirun -np 2 --oversubscribe --bind-to none bazel-bin/bench/dist_bench --sp=2 "$@"
