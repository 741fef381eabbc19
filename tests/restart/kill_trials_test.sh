#!/usr/bin/env bash
# Kill -9 trials. A 2-rank training job is killed (one rank SIGKILLed, so mpirun ends the
# job) during sampling, during the update, while a checkpoint is being written, just before
# it is committed, and at random moments; it is then restarted with --resume=latest until
# it completes. Every restart must resume from the newest committed checkpoint (never a
# partial file), and the final parameters, optimizer state and EMA must be bit-identical
# to an uninterrupted run. Then the rank count changes, 4 -> 2 and 2 -> 4, which must match
# the uninterrupted run within fp32 tolerance.
set -uo pipefail
train="$1"; inspect="$2"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/kill_trials"
rm -rf "${work}"; mkdir -p "${work}"
ITERS=12
ARGS=(--iterations="${ITERS}" --checkpoint_every=2 --keep_checkpoints=2 --save_trajectories --ema
      --grad_accum_samples=16 --micro_batch=4 --resume=latest --watchdog_seconds=60)
fail() { echo "KILL TRIALS FAILED: $*" >&2; exit 1; }
passed=0

run() {  # run NP DIR [extra args]: one attempt, returns mpirun's exit code
  local np="$1" dir="$2"; shift 2
  mpirun -np "${np}" --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" "$@" \
    >>"${dir}.log" 2>&1
}

latest() { ls "$1/checkpoints" 2>/dev/null | grep -E '^ckpt-[0-9]{6}\.h5$' | sort | tail -1; }

# Restarts the job in DIR until it completes; checks each restart resumed the newest
# committed checkpoint.
finish() {
  local np="$1" dir="$2" attempts=0
  while true; do
    attempts=$((attempts + 1)); [ "${attempts}" -le 6 ] || fail "${dir}: did not complete after 6 restarts"
    local expected; expected=$(latest "${dir}")
    local before; before=$(wc -l <"${dir}.log")
    run "${np}" "${dir}" && rc=0 || rc=$?
    local resumed; resumed=$(tail -n +"$((before + 1))" "${dir}.log" | grep -m1 -oE 'resumed from [^ ]+' | awk '{print $3}')
    if [ -n "${expected}" ]; then
      [ "${resumed}" = "${dir}/checkpoints/${expected}" ] || fail "${dir}: resumed '${resumed}', expected ${expected}"
    fi
    [ "${rc}" -eq 0 ] && return 0
  done
}

mkdir -p "${work}/ref"
run 2 "${work}/ref" || fail "the uninterrupted run failed: $(tail -5 "${work}/ref.log")"
ref="${work}/ref/checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
[ -f "${ref}" ] || fail "no final checkpoint in the reference run"

trial=0
check_final() {
  local dir="$1"
  local final="${dir}/checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
  "${inspect}" "${final}" --compare="${ref}" >"${dir}.inspect" 2>&1 || fail "${dir}: $(tail -2 "${dir}.inspect")"
  grep -q "bit-identical" "${dir}.inspect" || fail "${dir}: final state differs: $(tail -1 "${dir}.inspect")"
  for seg in $(find "${dir}/trajectories" -name 'seg-*.h5'); do
    "${inspect}" "${seg}" >/dev/null 2>&1 || fail "${seg} is not readable"
  done
  [ -z "$(find "${dir}/trajectories" -name '.seg-*')" ] || fail "${dir}: a temporary segment survived"
  passed=$((passed + 1))
}

# Targeted kills: phase:iteration:rank.
for fault in rollout:3:0 update:5:1 checkpoint:4:1 commit:6:0 checkpoint:8:0 rollout:11:1 update:0:0 commit:10:0; do
  trial=$((trial + 1)); dir="${work}/trial${trial}"; mkdir -p "${dir}"
  IFS=: read -r phase it rk <<<"${fault}"
  DGRPO_FAULT="phase=${phase},iteration=${it},rank=${rk}" run 2 "${dir}" && fail "${fault}: the injected kill did not happen"
  grep -q "DGRPO_FAULT: rank ${rk} kills itself at ${phase}" "${dir}.log" || fail "${fault}: no kill in the log"
  finish 2 "${dir}"
  check_final "${dir}"
  echo "trial ${trial} (${fault}): resumed and finished bit-identical"
done

# Random kills: SIGKILL a random rank after a random delay, twice per trial.
for r in 1 2 3 4; do
  trial=$((trial + 1)); dir="${work}/trial${trial}"; mkdir -p "${dir}"
  for kill_round in 1 2; do
    run 2 "${dir}" & job=$!
    sleep "0.$((RANDOM % 9 + 1))"
    # The rank processes of this job (not mpirun, whose command line also names --out).
    pids=()
    for pid in $(pgrep -f -- "--out=${dir} " || true); do
      [ "$(ps -o comm= -p "${pid}" 2>/dev/null)" = "train" ] && pids+=("${pid}")
    done
    if [ "${#pids[@]}" -gt 0 ]; then kill -9 "${pids[$((RANDOM % ${#pids[@]}))]}" 2>/dev/null || true; fi
    wait "${job}" || true
  done
  finish 2 "${dir}"
  check_final "${dir}"
  echo "trial ${trial} (random kills): resumed and finished bit-identical"
done

# Rank-count changes.
for change in "4 2" "2 4"; do
  read -r from to <<<"${change}"
  dir="${work}/reshard_${from}_${to}"; mkdir -p "${dir}"
  run "${from}" "${dir}" --iterations=6 || fail "reshard ${change}: first part failed"
  run "${to}" "${dir}" || fail "reshard ${change}: resumed part failed: $(tail -3 "${dir}.log")"
  grep -q "saved by ${from} ranks, now ${to}" "${dir}.log" || fail "reshard ${change}: no resharded resume"
  "${inspect}" "${dir}/checkpoints/ckpt-$(printf %06d ${ITERS}).h5" --compare="${ref}" --rtol=1e-5 \
    >"${dir}.inspect" 2>&1 || fail "reshard ${change}: $(tail -1 "${dir}.inspect")"
  echo "reshard ${from} -> ${to}: $(tail -1 "${dir}.inspect")"
  passed=$((passed + 1))
done
# Replay: a learner job trains from the reference run's trajectory shards without sampling;
# it sees the sampler's ratios and clip fractions and ends bit-identical to it.
dir="${work}/learner"; mkdir -p "${dir}"
mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" --iterations="${ITERS}" --checkpoint_every=6 \
  --ema --grad_accum_samples=16 --micro_batch=4 --replay_from="${work}/ref/trajectories" >"${dir}.log" 2>&1 \
  || fail "replay: $(tail -3 "${dir}.log")"
[ "$(grep -oE 'ratio [0-9.]+ clip [0-9.]+' "${dir}.log")" = "$(grep -oE 'ratio [0-9.]+ clip [0-9.]+' "${work}/ref.log")" ] \
  || fail "replay: the learner's ratios differ from the sampler's"
"${inspect}" "${dir}/checkpoints/ckpt-$(printf %06d ${ITERS}).h5" --compare="${ref}" >"${dir}.inspect" 2>&1 \
  || fail "replay: $(tail -1 "${dir}.inspect")"
grep -q "bit-identical" "${dir}.inspect" || fail "replay: the learner differs from the sampler"
echo "replay: ${ITERS} iterations from shards, bit-identical to the sampler"
passed=$((passed + 1))
echo "kill trials: ${passed} passed, 0 failed"
