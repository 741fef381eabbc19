// NCCL bootstrap: without --config=cuda the call must fail with a message naming the fix;
// with it, on a machine with GPUs, the all-reduce of rank ids must be n(n-1)/2. On a CUDA
// build without a GPU (as on the CPU CI machines) the test checks the error is clean.
// CheckGpuAssignment (one GPU per rank) is plain logic and runs everywhere.
#include <mpi.h>

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hpc/nccl_bootstrap.h"

namespace {

using dancegrpo::hpc::BootstrapNccl;
using dancegrpo::hpc::CheckGpuAssignment;
using dancegrpo::hpc::GpuSlot;
using dancegrpo::hpc::NcclCompiledIn;
using ::testing::HasSubstr;

GpuSlot Slot(const std::string& host, int device, int visible, const std::string& bus, const std::string& error = "") {
  GpuSlot s;
  s.host = host;
  s.device = device;
  s.visible = visible;
  s.bus_id = bus;
  s.error = error;
  return s;
}

TEST(GpuAssignment, OneGpuPerRankPasses) {
  // Two nodes with the same two bus ids: GPUs are told apart by (host, bus id).
  EXPECT_TRUE(CheckGpuAssignment({Slot("n1", 0, 2, "0000:1B:00.0"), Slot("n1", 1, 2, "0000:1C:00.0"),
                                  Slot("n2", 0, 2, "0000:1B:00.0"), Slot("n2", 1, 2, "0000:1C:00.0")})
                  .ok());
}

TEST(GpuAssignment, TwoRanksOnOneGpuNameBothRanksAndTheFix) {
  // CUDA_VISIBLE_DEVICES remapped: different ordinals, the same physical GPU.
  auto s = CheckGpuAssignment({Slot("n1", 0, 2, "0000:1B:00.0"), Slot("n1", 1, 2, "0000:1C:00.0"),
                               Slot("n1", 0, 2, "0000:1B:00.0")});
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("ranks 0 and 2 on host n1 both took GPU 0000:1B:00.0"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("one GPU per rank"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--map-by ppr:2:node"));
}

TEST(GpuAssignment, MoreRanksThanGpusSaysHowManyFit) {
  auto s = CheckGpuAssignment({Slot("n1", 0, 1, "0000:1B:00.0"), Slot("n1", 1, 1, "", "no such device")});
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1 on host n1 could not take GPU 1"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("shows 1 GPU(s)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--ntasks-per-node=1"));
}

TEST(GpuAssignment, NoCudaRuntimePointsToTheMpiBackendAndCountsTheOthers) {
  auto s = CheckGpuAssignment({Slot("n1", 0, -1, "", "cudaGetDeviceCount failed: no CUDA-capable device"),
                               Slot("n1", 1, -1, "", "cudaGetDeviceCount failed: no CUDA-capable device")});
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 0 on host n1"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("MPI backend"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[1 more rank(s) failed"));
}

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
