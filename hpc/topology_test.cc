#include "hpc/topology.h"

#include <mpi.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"

namespace dancegrpo::hpc {
namespace {

TEST(Topology, SpMajorLayoutAndDivisibilityErrors) {
  auto t = Topology::Make(8, 5, 2);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->dp, 4);
  EXPECT_EQ(t->dp_rank, 2);
  EXPECT_EQ(t->sp_rank, 1);
  auto bad = Topology::Make(6, 0, 4);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("does not divide"), std::string::npos);
  EXPECT_FALSE(Topology::Make(4, 0, 0).ok());
}

TEST(IntraOpThreads, EnvThenAffinityThenCoresPerRank) {
  EXPECT_EQ(IntraOpThreads(16, 16, 1, nullptr), 16);  // one rank: every core
  EXPECT_EQ(IntraOpThreads(16, 16, 8, nullptr), 2);   // 8 ranks share 16 cores
  EXPECT_EQ(IntraOpThreads(2, 2, 4, nullptr), 1);     // oversubscribed: at least 1
  EXPECT_EQ(IntraOpThreads(4, 16, 2, nullptr), 4);    // bound by the launcher to 4 CPUs
  EXPECT_EQ(IntraOpThreads(16, 16, 8, "6"), 6);       // OMP_NUM_THREADS wins
  EXPECT_EQ(IntraOpThreads(16, 16, 8, "0"), 2);       // ... when it is a positive number
  EXPECT_GE(IntraOpThreadsForThisProcess(1), 1);
}

TEST(SampleLayout, GroupsLieOnWholeRanks) {
  auto t = *Topology::Make(4, 3, 1);
  auto whole = SampleLayout::Make(8, 4, t);  // 32 samples, 8 per rank: 2 groups per rank
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->samples_per_rank, 8);
  EXPECT_EQ(whole->first_sample, 24);
  EXPECT_EQ(whole->ranks_per_group, 1);
  auto spanning = SampleLayout::Make(1, 12, t);  // 12 samples, 3 per rank: 4 ranks per group
  ASSERT_TRUE(spanning.ok());
  EXPECT_EQ(spanning->ranks_per_group, 4);
  auto uneven = SampleLayout::Make(3, 2, t);  // 6 samples over 4 ranks
  ASSERT_FALSE(uneven.ok());
  EXPECT_NE(uneven.status().message().find("multiple of 4"), std::string::npos);
  auto straddle = SampleLayout::Make(3, 8, *Topology::Make(4, 0, 1));  // 6 per rank, G = 8
  ASSERT_FALSE(straddle.ok());
  EXPECT_NE(straddle.status().message().find("straddle"), std::string::npos);
}

TEST(ProcessGrid, SubCommunicatorsMatchTheGrid) {
  auto world = *MpiCommunicator::Create(MPI_COMM_WORLD, {60});
  ASSERT_EQ(world->size(), 4);
  auto grid = ProcessGrid::Create(world, 2);
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->dp->size(), 2);
  EXPECT_EQ(grid->sp->size(), 2);
  EXPECT_EQ(grid->sp->rank(), world->rank() % 2);
  // The sp group of world rank r is {r - r%2, r - r%2 + 1}: consecutive ranks.
  auto x = torch::tensor({static_cast<int64_t>(world->rank())});
  ASSERT_TRUE(grid->sp->AllReduce(x, ReduceOp::kSum).ok());
  const int base = world->rank() - world->rank() % 2;
  EXPECT_EQ(x.item<int64_t>(), 2 * base + 1);
  // dp groups: ranks with the same sp_rank.
  auto y = torch::tensor({static_cast<int64_t>(world->rank())});
  ASSERT_TRUE(grid->dp->AllReduce(y, ReduceOp::kSum).ok());
  EXPECT_EQ(y.item<int64_t>(), world->rank() % 2 == 0 ? 0 + 2 : 1 + 3);
  // A sampling group of 4 samples over 2 replicas holding 2 each: one group spanning both.
  auto layout = SampleLayout::Make(1, 4, grid->topology);
  ASSERT_TRUE(layout.ok());
  auto group = grid->GroupCommunicator(*layout);
  ASSERT_TRUE(group.ok());
  EXPECT_EQ((*group)->size(), 2);
  auto bad = ProcessGrid::Create(world, 3);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace dancegrpo::hpc
