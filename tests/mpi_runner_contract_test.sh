#!/usr/bin/env bash
# Contract of tools/mpi_test_runner.sh (the mpi_test macro):
#   1. all ranks pass  -> exit 0;
#   2. one rank fails  -> non-zero exit, and that rank's failure text is in the log;
#   3. one rank skips a collective -> the job is killed by the runner's timeout, non-zero,
#      instead of hanging until Bazel's own timeout.
set -uo pipefail
runner="$1"; fixture="$2"
fail() { echo "CONTRACT VIOLATED: $*" >&2; exit 1; }

out=$("${runner}" 2 "${fixture}" 2>&1) || fail "clean run exited non-zero: ${out}"

out=$(DGRPO_FIXTURE_FAIL_RANK=1 "${runner}" 3 "${fixture}" 2>&1) && fail "a failing rank gave exit 0"
grep -q "\[rank 1\] FAILURE" <<<"${out}" || fail "rank 1's failure is not in the output: ${out}"
grep -q "fixture failure on purpose" <<<"${out}" || fail "the assertion message is missing: ${out}"

start=$(date +%s)
out=$(TEST_TIMEOUT=8 DGRPO_FIXTURE_SKIP_RANK=0 "${runner}" 2 "${fixture}" 2>&1) && fail "a hung job gave exit 0"
elapsed=$(( $(date +%s) - start ))
[ "${elapsed}" -lt 120 ] || fail "the hung job was not stopped by the runner (${elapsed}s)"
echo "mpi runner contract: 3 passed, 0 failed"
