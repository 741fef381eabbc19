// nccl_probe: checks the NCCL path on a GPU allocation before a long job is queued.
//   mpirun -np 8 bazel-bin/hpc/tools/nccl_probe
// Each rank takes its GPU from the launcher's local rank, bootstraps NCCL over MPI and
// all-reduces its rank id. Exit code 0 when the sum is n(n-1)/2 on every rank.
#include <mpi.h>

#include <cstdio>

#include "hpc/mpi_error.h"
#include "hpc/nccl_bootstrap.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  dancegrpo::hpc::UseReturnErrorsOn(MPI_COMM_WORLD);
  int exit_code = 0;
  auto handle = dancegrpo::hpc::BootstrapNccl(MPI_COMM_WORLD, dancegrpo::hpc::LauncherLocalRank());
  if (!handle.ok()) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, handle.status().ToString().c_str());
    exit_code = dancegrpo::hpc::NcclCompiledIn() ? 1 : 2;
  } else {
    auto sum = dancegrpo::hpc::NcclAllReduceRankIds(*handle, rank);
    const double expected = 0.5 * size * (size - 1);
    if (!sum.ok()) {
      std::fprintf(stderr, "[rank %d] %s\n", rank, sum.status().ToString().c_str());
      exit_code = 1;
    } else if (*sum != expected) {
      std::fprintf(stderr, "[rank %d] allreduce gave %g, expected %g\n", rank, *sum, expected);
      exit_code = 1;
    } else {
      std::printf("[rank %d/%d] device %d: NCCL allreduce of rank ids = %g (ok)\n", rank, size,
                  handle->device, *sum);
    }
    dancegrpo::hpc::DestroyNccl(*handle);
  }
  MPI_Finalize();
  return exit_code;
}
