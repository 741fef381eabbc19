#!/usr/bin/env bash
# Runs a test binary under mpirun inside `bazel test`. Usage: mpi_test_runner.sh NP BINARY [ARGS...]
set -uo pipefail
np="$1"; binary="$2"; shift 2

# Open MPI wants a writable HOME and refuses root without these.
export HOME="${TEST_TMPDIR:-${TMPDIR:-/tmp}}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Shared-memory transport without CMA (ptrace is not allowed in every sandbox).
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl_tcp_if_include="${OMPI_MCA_btl_tcp_if_include:-lo}"
export OMPI_MCA_oob_tcp_if_include="${OMPI_MCA_oob_tcp_if_include:-lo}"
# Let each rank see the whole of the two cores; MPI's binding would pin them all to one.
bind="--bind-to none"

# Kill the job a little before Bazel would, so mpirun reports which ranks were stuck.
budget="${TEST_TIMEOUT:-300}"
limit=$(( budget > 40 ? budget - 20 : budget ))

echo "mpi_test_runner: mpirun -np ${np} ${binary} $* (job timeout ${limit}s)"
mpirun -np "${np}" --oversubscribe ${bind} --tag-output --timeout "${limit}" "${binary}" "$@"
rc=$?
if [ "${rc}" -ne 0 ]; then
  echo "mpi_test_runner: mpirun exited with ${rc}; the lines tagged [jobid,RANK] above show each rank's output." >&2
fi
exit "${rc}"
