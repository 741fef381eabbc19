// NCCL bootstrap: without --config=cuda the call must fail with a message naming the fix;
// with it, on a machine with GPUs, the all-reduce of rank ids must be n(n-1)/2. On a CUDA
// build without a GPU (as on the CPU CI machines) the test checks the error is clean.
#include <mpi.h>

#include <cstdlib>

#include "gtest/gtest.h"
#include "hpc/nccl_bootstrap.h"

namespace {

using dancegrpo::hpc::BootstrapNccl;
using dancegrpo::hpc::NcclCompiledIn;

TEST(NcclBootstrap, LauncherLocalRankReadsOpenMpiVariable) {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  ASSERT_NE(local, nullptr) << "run under Open MPI's mpirun";
  EXPECT_EQ(dancegrpo::hpc::LauncherLocalRank(), std::atoi(local));
}

TEST(NcclBootstrap, BootstrapsOrExplainsWhyNot) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto handle = BootstrapNccl(MPI_COMM_WORLD, dancegrpo::hpc::LauncherLocalRank());
  if (!NcclCompiledIn()) {
    ASSERT_FALSE(handle.ok());
    EXPECT_NE(handle.status().message().find("--config=cuda"), std::string::npos) << handle.status();
    return;
  }
  if (!handle.ok()) {
    // A CUDA build on a machine without a GPU: the failure must be a status, not a crash.
    EXPECT_FALSE(handle.status().message().empty());
    GTEST_SKIP() << "no usable GPU: " << handle.status();
  }
  auto sum = dancegrpo::hpc::NcclAllReduceRankIds(*handle, rank);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 0.5 * size * (size - 1));
  dancegrpo::hpc::DestroyNccl(*handle);
}

}  // namespace
