// The conformance suite against the MPI backend (run under mpirun -np 2 and -np 4).
#include <mpi.h>

#include "hpc/comm/communicator_conformance.h"
#include "hpc/comm/mpi_communicator.h"

namespace dancegrpo::hpc {
namespace {

std::shared_ptr<Communicator> MakeMpi() {
  auto c = MpiCommunicator::Create(MPI_COMM_WORLD, WatchdogOptions{60});
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

INSTANTIATE_TEST_SUITE_P(Mpi, CommunicatorConformance, ::testing::Values(&MakeMpi));

TEST(MpiCommunicator, RejectsUnsupportedReductionTypes) {
  auto comm = MakeMpi();
  EXPECT_EQ(comm->backend(), "mpi");
  auto half = torch::zeros({4}, torch::kFloat16);
  auto s = comm->AllReduce(half, ReduceOp::kSum);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot reduce"), std::string::npos) << s;
}

TEST(MpiCommunicator, TracksTimeInCollectives) {
  auto comm = MakeMpi();
  auto x = torch::ones({1000});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(comm->AllReduce(x, ReduceOp::kSum).ok());
  EXPECT_GT(comm->seconds_in_collectives(), 0.0);
}

}  // namespace
}  // namespace dancegrpo::hpc
