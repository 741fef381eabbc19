// The conformance suite against the MPI backend (run under mpirun -np 2 and -np 4).
#include <mpi.h>

#include "absl/strings/str_cat.h"

#include "hpc/comm/agree.h"
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

// One rank's error becomes every rank's: the ranks that passed do not walk on into the next
// collective (where they would wait for the failed rank until the watchdog fires).
TEST(AgreeOnStatus, EveryRankGetsTheFirstFailingRanksError) {
  auto comm = MakeMpi();
  const int n = comm->size();
  ASSERT_GE(n, 2);
  // Nobody failed: OK everywhere, and nothing is marked.
  auto none = AgreeOnStatus(absl::OkStatus(), comm.get());
  EXPECT_TRUE(none.ok()) << none;
  // Rank 1 failed alone.
  const auto local = comm->rank() == 1 ? absl::InternalError("reward 'torchscript:hps.pt': server down")
                                       : absl::OkStatus();
  auto one = AgreeOnStatus(local, comm.get());
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(one.message(), absl::StrCat("rank 1 of ", n, ": reward 'torchscript:hps.pt': server down"));
  EXPECT_TRUE(IsAgreed(one));
  EXPECT_FALSE(IsAgreed(local));
  // Several failed: the lowest failing rank's message, the same on every rank.
  const auto many = comm->rank() >= n / 2 ? absl::InvalidArgumentError(absl::StrCat("bad clip on rank ", comm->rank()))
                                          : absl::OkStatus();
  auto agreed = AgreeOnStatus(many, comm.get());
  ASSERT_FALSE(agreed.ok());
  EXPECT_EQ(agreed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agreed.message(), absl::StrCat("rank ", n / 2, " of ", n, ": bad clip on rank ", n / 2));
  // An empty message travels too.
  auto empty = AgreeOnStatus(comm->rank() == 0 ? absl::UnknownError("") : absl::OkStatus(), comm.get());
  EXPECT_EQ(empty.message(), absl::StrCat("rank 0 of ", n, ": "));
}

}  // namespace
}  // namespace dancegrpo::hpc
