#!/usr/bin/env bash
# A whole GRPO iteration of the shapes demo, our `train` against its plain-PyTorch twin
# (bench/twin/grpo_twin.py), side by side on this machine: the same base weights, text
# embeddings, prompts and flags (configs/shapes.flags), NP ranks, THREADS intra-op threads a
# rank, the same malloc (tcmalloc preloaded into both, as scripts/demo.sh does), ROUNDS
# alternating rounds of ITERS iterations; the first SKIP iterations of each run are warm-up.
# First checks that the twin runs the same job (its log-probs and rule rewards of a trajectory
# train wrote). Prints each round's seconds per iteration and the C++/Python ratio (mean, min,
# max); never fails on time. Needs Debian's python3-torch and python3-h5py.
#   bench/twin/grpo_compare.sh                  # 2 ranks x 1 thread (the demo), 3 rounds
#   NP=1 THREADS=2 ROUNDS=5 bench/twin/grpo_compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
NP=${NP:-2} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-3} ITERS=${ITERS:-12} SKIP=${SKIP:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
"${PYTHON}" -c 'import torch, h5py' 2>/dev/null ||
  { echo "grpo_compare.sh: ${PYTHON} lacks torch or h5py; apt-get install python3-torch python3-h5py" >&2; exit 2; }
bazel build --config=quiet //dancegrpo/tools:train //world/tools:shapes_inputs
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
inputs="${work}/inputs"
bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out="${inputs}" >/dev/null
# One optimizer step an iteration, as the twin takes (the demo's flags now take four).
flags=(--flagfile=configs/shapes.flags --grad_accum_samples=0 --clip_range=1e-4 --model="${inputs}/config.json" --weights="${inputs}/dit.safetensors"
       --embeddings="${inputs}/embeddings.h5" --prompts="${inputs}/train.jsonl" --threads="${THREADS}"
       --sample_every=0 --tensorboard=false)
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
preload=(); [ -e "${tcmalloc}" ] && preload=(-x LD_PRELOAD="${tcmalloc}")
mpi=(mpirun -np "${NP}" --oversubscribe --bind-to none "${preload[@]}")
[ -n "${OPENBLAS_CORETYPE:-}" ] && mpi+=(-x OPENBLAS_CORETYPE)

# The same job: one iteration of train from the base, every latent kept, read by the twin.
"${mpi[@]}" bazel-bin/dancegrpo/tools/train "${flags[@]}" --iterations=1 --trajectory_latents=all \
  --out="${work}/numerics" >"${work}/numerics.log" 2>&1 || { cat "${work}/numerics.log"; exit 1; }
"${PYTHON}" bench/twin/grpo_twin.py numerics --inputs="${inputs}" \
  --trajectories="${work}/numerics/trajectories/rank-00000/seg-000000.h5"

# Mean seconds per iteration after the warm-up.
mean_of() { awk -v skip="${SKIP}" 'NR > skip {s += $1; n++} END {printf "%.4f", s / n}'; }
echo "shapes demo iteration (configs/shapes.flags), ${NP} rank(s) x ${THREADS} thread(s), ${ROUNDS} rounds of" \
  "${ITERS} iterations (first ${SKIP} skipped), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
printf '%-6s %10s %10s %8s   %s\n' round "C++ s/it" "Python s/it" ratio "phases C++ | Python: rollout reward update"
ratios=()
for r in $(seq "${ROUNDS}"); do
  rm -rf "${work}/run"
  "${mpi[@]}" bazel-bin/dancegrpo/tools/train "${flags[@]}" --iterations="${ITERS}" --checkpoint_every=1000 \
    --out="${work}/run" >"${work}/train.log" 2>&1 || { cat "${work}/train.log"; exit 1; }
  metrics="${work}/run/metrics.jsonl"
  field() { sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/" "${metrics}" | mean_of; }
  c=$(field seconds) cr=$(field rollout_seconds) cw=$(field reward_seconds) cu=$(field update_seconds)
  "${mpi[@]}" -x TWIN_PORT=$((29500 + r)) "${PYTHON}" bench/twin/grpo_twin.py bench --inputs="${inputs}" \
    --threads="${THREADS}" --iterations="${ITERS}" >"${work}/twin.log" 2>&1 || { cat "${work}/twin.log"; exit 1; }
  twin() { awk -v k="$1" '$1 == "twin" && $2 == "iteration" {for (i = 3; i < NF; i++) if ($i == k) print $(i + 1)}' \
             "${work}/twin.log" | mean_of; }
  p=$(twin seconds) pr=$(twin rollout) pw=$(twin reward) pu=$(twin update)
  ratio=$(awk -v a="${c}" -v b="${p}" 'BEGIN {printf "%.3f", a / b}')
  printf '%-6s %10.3f %10.3f %8s   %.3f %.3f %.3f | %.3f %.3f %.3f\n' "${r}" "${c}" "${p}" "${ratio}" \
    "${cr}" "${cw}" "${cu}" "${pr}" "${pw}" "${pu}"
  ratios+=("${ratio}")
done
printf '%s\n' "${ratios[@]}" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
  END {printf "iteration C++/Python time: mean %.3f, min %.3f, max %.3f over %d rounds\n", s / NR, lo, hi, NR}'
