#!/usr/bin/env bash
# The main job: GRPO on the shapes world from the shipped base checkpoint, on 2 MPI ranks,
# then a held-out table of base against trained, per reward.
#   ./scripts/demo.sh                 (7-11 minutes on 2 AVX-512 cores, 20-40 on 2 older AVX2 cores; after setup and a cold build)
#   PRECISION=bf16 ./scripts/demo.sh  (bf16 compute weights and activations, fp32 masters)
#   SEED=2 OUT=runs/demo_seed2 ./scripts/demo.sh  (another training seed; scripts/demo_seeds.sh runs 3)
#   FLAGFILE=configs/shapes_lora.flags OUT=runs/demo_lora ./scripts/demo.sh  (LoRA instead of full fine-tuning)
#   EVAL_SAMPLES=8 EVAL_SEED=777 ./scripts/demo.sh  (the held-out evaluation's samples per prompt and noise seed)
#   EVAL_EMA=0 ./scripts/demo.sh      (the held-out table of the last weights; by default, that of their EMA, which
#                                      the demo's recipe keeps, as any recipe with --ema)
# The shapes world goes through the same path as a user's own model: shapes_inputs writes its
# config.json, weights, text embeddings and prompt files, and train / evaluate read them.
# Outputs in runs/demo: metrics.jsonl, reward_curves.png, samples/iter_*.{png,gif}, tensorboard/,
# checkpoints/, trajectories/, heldout_table.md, eval_{base,trained}.{png,gif} and
# base_vs_trained.gif, which the default run also copies to docs/images/ (the README shows it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --config=quiet //dancegrpo/tools:train //dancegrpo/tools:evaluate //dancegrpo/tools:inspect \
  //world/tools:shapes_inputs
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
out="${OUT:-runs/demo}"
precision="${PRECISION:-fp32}"
rm -rf "${out}"
bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out=runs/shapes_inputs
# tcmalloc keeps freed tensors mapped: the small demo runs ~20% faster. (Not the default of
# train: at billion scale it costs up to 20% more peak memory than the plan counts.)
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
preload=(); [ -e "${tcmalloc}" ] && preload=(-x LD_PRELOAD="${tcmalloc}")
# (OPENBLAS_CORETYPE, when set, is kept by train and evaluate: e.g. Prescott for the generic kernels.)
[ -n "${OPENBLAS_CORETYPE:-}" ] && preload+=(-x OPENBLAS_CORETYPE)
mpirun -np "${NP:-2}" --oversubscribe --bind-to none "${preload[@]}" bazel-bin/dancegrpo/tools/train \
  --flagfile="${FLAGFILE:-configs/shapes.flags}" --precision="${precision}" --seed="${SEED:-1}" --out="${out}"
final=$(ls "${out}"/checkpoints/ckpt-*.h5 | tail -1)  # the last checkpoint (the flagfile's --iterations)
# A recipe with --keep_best: the checkpoint after the run's best window of training reward.
[ -e "${out}/checkpoints/best.h5" ] && final="${out}/checkpoints/best.h5"
bazel-bin/dancegrpo/tools/inspect "${final}" | head -3
# evaluate samples with the checkpoint's sampler unless told otherwise; the held-out table in
# the README was measured with every step stochastic at eta 0.3 (and 32 samples a batch), so
# those are given here.
PRECISION="${precision}" ./scripts/demo_evaluate.sh "${final}" "${out}"
if [ -z "${OUT:-}" ] && [ -z "${FLAGFILE:-}" ] && [ "${precision}" = fp32 ] && [ "${SEED:-1}" = 1 ]; then
  cp "${out}/base_vs_trained.gif" docs/images/base_vs_trained.gif
  echo "copied ${out}/base_vs_trained.gif to docs/images/ (the README's picture)"
fi
echo "reward curves: ${out}/reward_curves.png; samples: ${out}/samples/; held-out: ${out}/heldout_table.md," \
  "${out}/base_vs_trained.gif; TensorBoard: tensorboard --logdir ${out}/tensorboard"
