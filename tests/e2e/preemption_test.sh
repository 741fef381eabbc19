#!/usr/bin/env bash
# Preemption: a stop signal (SIGTERM from Slurm to each task, or SIGUSR1 to mpirun, which
# forwards it) mid-run makes every rank write a checkpoint after the current iteration and
# exit 0; --resume=latest then ends bit-identical to an uninterrupted run.
set -uo pipefail
train="$1"; inspect="$2"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/preemption"
rm -rf "${work}"; mkdir -p "${work}"
ITERS=300
ARGS=(--model=toy --iterations="${ITERS}" --prompts_per_iteration=4 --group_size=4 --steps=4 --micro_batch=4
      --seed=5 --sample_every=0 --watchdog_seconds=60)
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
}
stop_run sigterm_to_ranks TERM ranks
stop_run sigusr1_to_mpirun USR1 mpirun
echo "preemption: all passed"
