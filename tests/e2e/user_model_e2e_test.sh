#!/usr/bin/env bash
# End to end with a user's own model, as the README's "Train your own model" runs it: a tiny
# Wan-format DiT (sharded safetensors + index.json, config.json), HDF5 text embeddings, a
# TorchScript decoder and a TorchScript reward, all written by make_fixtures. Under
# mpirun -np 2, in bf16:
#   1. an uninterrupted run of ITERS iterations;
#   2. the same run killed (SIGKILL on rank 1 in the middle of an update) and resumed with
#      --resume=latest: its final state must be bit-identical to the uninterrupted run's;
#   3. evaluate: on the held-out prompts the trained policy must beat the base on the reward.
# It also checks the pictures: sample PNGs and GIFs, TensorBoard events (CRCs and values), and
# evaluate's base-against-trained GIF.
set -uo pipefail
make_fixtures="$1"; train="$2"; evaluate="$3"; inspect="$4"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/user_model"
rm -rf "${work}"; mkdir -p "${work}"
fail() { echo "USER MODEL E2E FAILED: $*" >&2; exit 1; }
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" || fail "make_fixtures"

ITERS=12
MODEL=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
       --embeddings="${fx}/embeddings.h5" --latent_shape=4,2,8,8 --decoder="${fx}/decoder.pt"
       --rewards="torchscript=${fx}/reward.pt" --precision=bf16)
ARGS=("${MODEL[@]}" --prompts="${fx}/prompts.txt" --iterations="${ITERS}" --prompts_per_iteration=4 --group_size=4
      --steps=6 --eta=0.7 --micro_batch=4 --timestep_fraction=0.5 --lr=3e-3 --clip_range=0.2 --seed=3
      --checkpoint_every=4 --keep_checkpoints=0 --sample_every=6 --save_trajectories --watchdog_seconds=60)
run() {  # run DIR [extra args]
  local dir="$1"; shift
  mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" "$@" >>"${dir}.log" 2>&1
}

run "${work}/ref" || fail "the uninterrupted run failed: $(tail -5 "${work}/ref.log")"
grep -E "^iter (1|${ITERS})/" "${work}/ref.log"
grep -q "bf16" "${work}/ref.log" || fail "the run did not report bf16"
final="checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
[ -f "${work}/ref/${final}" ] || fail "no final checkpoint"
for f in reward_curves.png samples/iter_000000.png samples/iter_000006.png samples/iter_000006.gif metrics.jsonl; do
  [ -s "${work}/ref/${f}" ] || fail "missing ${f}"
done
[ "$(head -c 6 "${work}/ref/samples/iter_000006.gif")" = "GIF89a" ] || fail "samples/iter_000006.gif is not a GIF89a"
# TensorBoard: one event file; inspect checks every record's CRCs; the reward's last value is
# metrics.jsonl's (the event stores it as a float).
events=("${work}"/ref/tensorboard/events.out.tfevents.*)
[ "${#events[@]}" -eq 1 ] && [ -s "${events[0]}" ] || fail "expected one TensorBoard event file, found: ${events[*]}"
"${inspect}" "${events[0]}" >"${work}/events.txt" 2>&1 || fail "inspect events: $(cat "${work}/events.txt")"
cat "${work}/events.txt"
tb_last=$(grep -E "^  reward/[^ ]+/mean: ${ITERS} values" "${work}/events.txt" | sed -E 's/.*the last ([^ ]+) .*/\1/')
[ -n "${tb_last}" ] || fail "no ${ITERS} values of the reward's mean in the events"
json_last=$(tail -1 "${work}/ref/metrics.jsonl" | sed -E 's/.*"mean": ([^,}]+).*/\1/')
awk -v a="${tb_last}" -v b="${json_last}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * (b < 0 ? -b : b) + 1e-6) }' ||
  fail "TensorBoard's last reward ${tb_last} is not metrics.jsonl's ${json_last}"
for t in update/ratio_mean update/clip_fraction update/approx_kl update/grad_norm throughput/samples_per_second \
         time/rollout_seconds time/update_seconds; do
  grep -qF "  ${t}: ${ITERS} values" "${work}/events.txt" || fail "no ${ITERS} values of ${t} in the events"
done
grep -qE "  samples: 3 images" "${work}/events.txt" || fail "expected 3 sample images (iterations 0, 6 and the last) in the events"

# Killed on rank 1 after the first optimizer step of iteration 6, then resumed.
DGRPO_FAULT="phase=update,iteration=6,rank=1" run "${work}/killed" && fail "the faulted run should have died"
grep -q "ckpt-000004.h5" <(ls "${work}/killed/checkpoints") || fail "no checkpoint before the kill"
run "${work}/killed" --resume=latest || fail "resume failed: $(tail -5 "${work}/killed.log")"
grep -q "resumed from ${work}/killed/checkpoints/ckpt-000004.h5" "${work}/killed.log" || fail "did not resume iteration 4"
"${inspect}" "${work}/killed/${final}" --compare="${work}/ref/${final}" >"${work}/compare.txt" 2>&1 || \
  fail "inspect: $(cat "${work}/compare.txt")"
cat "${work}/compare.txt" | tail -1
grep -q "bit-identical" "${work}/compare.txt" || fail "killed + resumed differs from uninterrupted: $(tail -1 "${work}/compare.txt")"

# Base against trained on the held-out prompts, the same noise for both.
"${evaluate}" "${MODEL[@]}" --prompts="${fx}/heldout.jsonl" --checkpoint="${work}/ref/${final}" \
  --samples_per_prompt=4 --steps=6 --out="${work}/ref" >"${work}/eval.txt" 2>&1 || fail "evaluate: $(cat "${work}/eval.txt")"
cat "${work}/eval.txt"
# evaluate samples as the run trained (eta 0.7 from the checkpoint; --steps given here).
grep -qF "sampler (the checkpoint's, with the flags given): dancegrpo SDE (eta 0.7), 6 steps, shift 1" "${work}/eval.txt" ||
  fail "evaluate did not use the training sampler: $(grep sampler "${work}/eval.txt")"
read -r b t <<<"$(grep -E '^\| torchscript' "${work}/eval.txt" | awk -F'|' '{print $3, $4}')"
awk -v b="${b}" -v t="${t}" 'BEGIN { exit !(t > b + 0.1) }' || fail "the reward did not improve held out by 0.1: base ${b}, trained ${t}"
for f in eval_trained.png eval_base.gif eval_trained.gif base_vs_trained.gif; do
  [ -s "${work}/ref/${f}" ] || fail "evaluate wrote no ${f}"
done
echo "user model e2e: 1 passed, 0 failed (held-out reward: base ${b} -> trained ${t}; kill + resume bit-identical)"
