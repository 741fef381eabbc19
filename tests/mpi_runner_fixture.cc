// A deliberately misbehaving MPI test, used only by mpi_runner_contract_test.sh to prove
// that the mpi_test runner reports failures from any rank and never hangs.
//   DGRPO_FIXTURE_FAIL_RANK=r   rank r fails an assertion (the others pass);
//   DGRPO_FIXTURE_SKIP_RANK=r   rank r skips a barrier that the others wait in.
#include <mpi.h>

#include <cstdlib>

#include "gtest/gtest.h"

namespace {

int EnvRank(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : -1;
}

TEST(RunnerFixture, MaybeFailOrSkipCollective) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  EXPECT_NE(rank, EnvRank("DGRPO_FIXTURE_FAIL_RANK")) << "fixture failure on purpose";
  if (rank != EnvRank("DGRPO_FIXTURE_SKIP_RANK")) MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
