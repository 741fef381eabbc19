#!/usr/bin/env bash
# A reward model that raises on one rank's clips (a reward server that went down, say) stops
# the job on every rank, with one message naming the reward and what it raised: no hang, no
# abort, nothing of the failed iteration written, and the checkpoints written before it whole
# (a run with the good reward resumes from the last one and finishes).
set -uo pipefail
make_fixtures="$1"; train="$2"; inspect="$3"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/reward_failure"
rm -rf "${work}"; mkdir -p "${work}"
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || { echo "make_fixtures failed"; exit 1; }
fail() { echo "FAIL: $*"; [ -f "${work}/run.log" ] && tail -20 "${work}/run.log"; exit 1; }
# 8 iterations of 2 prompts from 8: some iteration draws "a blue lamp in the dark", on one rank.
args=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
      --embeddings="${fx}/embeddings.h5" --prompts="${fx}/prompts.txt" --latent_shape=4,2,8,8
      --decoder="${fx}/decoder.pt" --iterations=8 --prompts_per_iteration=2 --group_size=2 --steps=3
      --micro_batch=2 --checkpoint_every=1 --keep_checkpoints=20 --save_trajectories --watchdog_seconds=60
      --out="${work}/run")
timeout 300 mpirun -np 2 "${train}" "${args[@]}" --rewards="torchscript=${fx}/raising_reward.pt" \
  >"${work}/run.log" 2>&1
rc=$?
[ "${rc}" -eq 124 ] && fail "train hung (killed by timeout)"
[ "${rc}" -ne 0 ] || fail "train exited 0 although the reward raised"
grep -q "MPI_ABORT\|terminate called\|Aborted" "${work}/run.log" && fail "the job was aborted instead of stopped"
grep -qE "train: stopped in iteration [0-9]+ on every rank: rank [01] of 2: reward 'torchscript:raising_reward.pt': .*reward server down" \
  "${work}/run.log" || fail "no message naming the rank, the reward and what it raised"
failed_at=$(sed -nE 's/.*stopped in iteration ([0-9]+) on every rank.*/\1/p' "${work}/run.log" | head -1)
echo "ok   stopped on every rank in iteration ${failed_at}: $(grep -m1 'stopped in iteration' "${work}/run.log" | cut -c1-200)"
[ "${failed_at}" -ge 1 ] || fail "the lamp prompt was drawn in iteration 0; pick another prompt so a checkpoint precedes the failure"
# Nothing of the failed iteration, and every checkpoint before it whole.
ckpts=$(ls "${work}/run/checkpoints")
echo "${ckpts}" | grep -q "ckpt-$(printf %06d $((failed_at + 1)))" && fail "a checkpoint after the failed iteration exists"
echo "${ckpts}" | grep -vqE '^ckpt-[0-9]{6}\.h5$|^latest$' && fail "stray files in checkpoints/: ${ckpts}"
last="${work}/run/checkpoints/ckpt-$(printf %06d "${failed_at}").h5"
"${inspect}" "${last}" >"${work}/inspect.log" 2>&1 || fail "the last checkpoint does not read: $(cat "${work}/inspect.log")"
echo "ok   checkpoint ${last##*/} reads; no later checkpoint"
# The good reward resumes from it and finishes.
timeout 300 mpirun -np 2 "${train}" "${args[@]}" --rewards="torchscript=${fx}/reward.pt" --resume=latest \
  >"${work}/resume.log" 2>&1 || { tail -20 "${work}/resume.log"; fail "the resumed run failed"; }
grep -q "resum" "${work}/resume.log" || { tail -5 "${work}/resume.log"; fail "the run did not say it resumed"; }
[ -f "${work}/run/checkpoints/ckpt-000008.h5" ] || fail "the resumed run did not reach iteration 8"
echo "ok   resumed with the good reward from iteration ${failed_at} and finished"
echo "reward failure: passed"
