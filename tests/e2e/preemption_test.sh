#!/usr/bin/env bash
# Preemption: a stop signal (SIGTERM from Slurm to each task, or SIGUSR1 to mpirun, which
# forwards it) mid-run makes every rank write a checkpoint after the current iteration and
# exit 0; --resume=latest then ends bit-identical to an uninterrupted run, with the same
# --keep_best checkpoint (best.h5). The third case runs
# scripts/sbatch/dancegrpo.sbatch itself with mpirun as its launcher (a tiny Wan-format model
# from make_fixtures in its flag file): signalled, stopped, run again, bit-identical.
set -uo pipefail
train="$1"; inspect="$2"; make_fixtures="$3"; sbatch="$4"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/preemption"
rm -rf "${work}"; mkdir -p "${work}"
ITERS=300
ARGS=(--model=toy --iterations="${ITERS}" --prompts_per_iteration=4 --group_size=4 --steps=4 --micro_batch=4
      --seed=5 --sample_every=0 --watchdog_seconds=60 --checkpoint_every=50 --keep_best)
fail() { echo "FAIL: $*"; exit 1; }

timeout 300 mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${work}/ref" "${ARGS[@]}" \
  >"${work}/ref.log" 2>&1 || fail "uninterrupted run: $(tail -3 "${work}/ref.log")"
final=$(printf 'ckpt-%06d.h5' "${ITERS}")

# stop_run NAME SIGNAL TARGET: start a run, signal it after a few iterations, expect exit 0
# and a committed checkpoint before the end.
stop_run() {
  local name="$1" signal="$2" target="$3" dir="${work}/$1"
  mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" >"${dir}.log" 2>&1 &
  local launcher=$!
  for _ in $(seq 600); do
    [ -f "${dir}/metrics.jsonl" ] && [ "$(wc -l <"${dir}/metrics.jsonl")" -ge 5 ] && break
    sleep 0.1
  done
  if [ "${target}" = ranks ]; then
    pkill "-${signal}" -P "${launcher}" || fail "${name}: no rank to signal"  # the ranks: mpirun's children
  else
    kill "-${signal}" "${launcher}"
  fi
  wait "${launcher}"; local rc=$?
  [ "${rc}" -eq 0 ] || fail "${name}: exit ${rc} after SIG${signal}: $(tail -5 "${dir}.log")"
  grep -q "stopped by signal" "${dir}.log" || fail "${name}: no stop message: $(tail -5 "${dir}.log")"
  local ckpt; ckpt=$(ls "${dir}/checkpoints" | grep -E '^ckpt-[0-9]{6}\.h5$' | tail -1)
  [ -n "${ckpt}" ] || fail "${name}: no committed checkpoint"
  [ "${ckpt}" != "${final}" ] || fail "${name}: the run ended before the signal; nothing was tested"
  echo "ok   ${name}: $(grep -m1 'stopped by signal' "${dir}.log")"
  timeout 300 mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" --resume=latest \
    >>"${dir}.log" 2>&1 || fail "${name}: resume failed: $(tail -3 "${dir}.log")"
  "${inspect}" "${dir}/checkpoints/${final}" --compare="${work}/ref/checkpoints/${final}" >"${dir}.compare" 2>&1 ||
    fail "${name}: resumed != uninterrupted: $(cat "${dir}.compare")"
  grep -q "bit-identical" "${dir}.compare" || fail "${name}: $(cat "${dir}.compare")"
  echo "ok   ${name}: resumed run bit-identical to the uninterrupted one"
  # --keep_best: the resumed run keeps the uninterrupted run's best (its scores rebuilt from
  # metrics.jsonl; the stop's own checkpoint is not a candidate).
  "${inspect}" "${dir}/checkpoints/best.h5" --compare="${work}/ref/checkpoints/best.h5" >"${dir}.best" 2>&1 ||
    fail "${name}: best.h5: $(cat "${dir}.best")"
  grep -q "bit-identical" "${dir}.best" || fail "${name}: best.h5 differs: $(cat "${dir}.best")"
  [ "$(grep '^best:' "${dir}.log" | tail -1)" = "$(grep '^best:' "${work}/ref.log" | tail -1 | sed "s|${work}/ref|${dir}|")" ] ||
    fail "${name}: best.h5 is another checkpoint: $(grep '^best:' "${dir}.log" | tail -1)"
  echo "ok   ${name}: best.h5 the uninterrupted run's ($(grep '^best:' "${dir}.log" | tail -1 | sed 's/.*= //'))"
}
stop_run sigterm_to_ranks TERM ranks
stop_run sigusr1_to_mpirun USR1 mpirun

# --- The batch script: its launch line under mpirun instead of srun.
bash -n "${sbatch}" || fail "bash -n ${sbatch}"
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || fail "make_fixtures"
cat >"${work}/job.flags" <<FLAGS
--model=${fx}/config.json
--weights=${fx}/diffusion_pytorch_model.safetensors.index.json
--embeddings=${fx}/embeddings.h5
--prompts=${fx}/prompts.txt
--latent_shape=4,2,8,8
--decoder=${fx}/decoder.pt
--rewards=torchscript=${fx}/reward.pt
--precision=bf16
--iterations=40
--prompts_per_iteration=4
--group_size=4
--steps=6
--eta=0.7
--micro_batch=4
--timestep_fraction=0.5
--lr=3e-3
--clip_range=0.2
--checkpoint_every=100
--sample_every=0
--watchdog_seconds=60
FLAGS
job() {  # job OUT: the batch script, as sbatch would run it, with mpirun as the launcher
  DANCEGRPO_FLAGS="${work}/job.flags" DANCEGRPO_OUT="$1" DANCEGRPO_BIN="$(dirname "${train}")" \
    DANCEGRPO_LAUNCH="mpirun -np 2 --oversubscribe --bind-to none" bash "${sbatch}" >/dev/null 2>&1
}
job "${work}/job_ref" || fail "sbatch script, uninterrupted: $(tail -3 "${work}/job_ref.log")"
job_final="${work}/job_ref/checkpoints/ckpt-000040.h5"
[ -f "${job_final}" ] || fail "sbatch script: no final checkpoint"
job "${work}/job_stop" &
script=$!
for _ in $(seq 600); do
  [ -f "${work}/job_stop/metrics.jsonl" ] && [ "$(wc -l <"${work}/job_stop/metrics.jsonl")" -ge 5 ] && break
  sleep 0.1
done
# The batch shell's children are the launcher and tee; signal the launcher, which forwards
# SIGUSR1 to the ranks (Slurm's --signal sends it to the tasks directly).
shell=$(pgrep -P "${script}" -x bash || echo "${script}")
for child in $(pgrep -P "${shell}"); do
  [ "$(cat "/proc/${child}/comm" 2>/dev/null)" = tee ] || kill -USR1 "${child}"
done
wait "${script}"; rc=$?
[ "${rc}" -eq 0 ] || fail "sbatch script: exit ${rc} after SIGUSR1: $(tail -5 "${work}/job_stop.log")"
grep -q "stopped by signal" "${work}/job_stop.log" || fail "sbatch script: no stop message: $(tail -5 "${work}/job_stop.log")"
[ ! -f "${work}/job_stop/checkpoints/ckpt-000040.h5" ] || fail "sbatch script: the run ended before the signal"
ls "${work}/job_stop/checkpoints" | grep -qE '^ckpt-[0-9]{6}\.h5$' || fail "sbatch script: no committed checkpoint"
echo "ok   sbatch_script_sigusr1: $(grep -m1 'stopped by signal' "${work}/job_stop.log")"
job "${work}/job_stop" || fail "sbatch script, requeued: $(tail -3 "${work}/job_stop.log")"
grep -q "resumed from" "${work}/job_stop.log" || fail "sbatch script: the second run did not resume"
"${inspect}" "${work}/job_stop/checkpoints/ckpt-000040.h5" --compare="${job_final}" >"${work}/job.compare" 2>&1 ||
  fail "sbatch script: resumed != uninterrupted: $(cat "${work}/job.compare")"
grep -q "bit-identical" "${work}/job.compare" || fail "sbatch script: $(cat "${work}/job.compare")"
echo "ok   sbatch_script_sigusr1: the requeued run resumed and ended bit-identical to the uninterrupted one"
echo "preemption: all passed"
