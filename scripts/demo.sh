#!/usr/bin/env bash
# The main job: GRPO on the shapes world from the shipped base checkpoint, on 2 MPI ranks,
# then a held-out table of base against trained, per reward.
#   ./scripts/demo.sh                 (about 4 minutes of training on 2 cores, after setup and a ~3 minute cold build)
# Outputs in runs/demo: metrics.jsonl, reward_curves.png, samples/iter_*.png,
# checkpoints/, trajectories/, eval_base.png and eval_trained.png.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --config=quiet //dancegrpo/tools:train //dancegrpo/tools:evaluate //dancegrpo/tools:inspect
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
out="${OUT:-runs/demo}"
rm -rf "${out}"
mpirun -np "${NP:-2}" --oversubscribe --bind-to none bazel-bin/dancegrpo/tools/train \
  --flagfile=configs/shapes.flags --out="${out}"
iterations=$(grep -E '^--iterations=' configs/shapes.flags | cut -d= -f2)
final="${out}/checkpoints/ckpt-$(printf %06d "${iterations}").h5"
bazel-bin/dancegrpo/tools/inspect "${final}" | head -3
bazel-bin/dancegrpo/tools/evaluate --base=configs/base/shapes_base.safetensors --checkpoint="${final}" \
  --split=heldout --out="${out}" | tee "${out}/heldout_table.md"
echo "reward curves: ${out}/reward_curves.png; samples: ${out}/samples/; held-out grids: ${out}/eval_*.png"
