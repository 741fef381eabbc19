// The conformance suite against the NCCL backend. Needs GPUs and --config=cuda:
//   mpirun -np 2 bazel-bin/hpc/comm/nccl_communicator_test_bin
#include <mpi.h>

#include "hpc/comm/communicator_conformance.h"
#include "hpc/comm/nccl_communicator.h"

namespace dancegrpo::hpc {
namespace {

std::shared_ptr<Communicator> MakeNccl() {
  auto mpi = MpiCommunicator::Create(MPI_COMM_WORLD, {60});
  EXPECT_TRUE(mpi.ok()) << mpi.status();
  auto c = NcclCommunicator::Create(*mpi);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::shared_ptr<Communicator>(*c) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Nccl, CommunicatorConformance, ::testing::Values(&MakeNccl));

}  // namespace
}  // namespace dancegrpo::hpc
