#!/usr/bin/env bash
# The collective watchdog: when one rank skips a collective, the job must end within the
# timeout (plus start-up and grace), name that rank, and exit non-zero.
set -uo pipefail
fixture="$1"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
fail() { echo "WATCHDOG TEST FAILED: $*" >&2; exit 1; }
passed=0
for case in "3 2" "3 0" "2 1"; do
  set -- ${case}
  np=$1; skip=$2
  start=$(date +%s)
  out=$(mpirun -np "${np}" --oversubscribe --bind-to none "${fixture}" "${skip}" 3 2>&1)
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  echo "--- np=${np} skip=${skip}: rc=${rc}, ${elapsed}s"
  echo "${out}" | grep -E "watchdog|skipping" | head -5
  [ "${rc}" -ne 0 ] || fail "np=${np}: the job exited 0"
  [ "${elapsed}" -lt 60 ] || fail "np=${np}: the job took ${elapsed}s (timeout 3s)"
  grep -q "Not arrived: rank ${skip} (world rank ${skip}, last entered collective #2)" <<<"${out}" \
    || fail "np=${np}: rank ${skip} was not named: ${out}"
  grep -q "finished without the watchdog" <<<"${out}" && fail "np=${np}: a rank got past the collective"
  passed=$((passed + 1))
done
echo "watchdog: ${passed} passed, 0 failed"
