// Open MPI smoke test: an allreduce of rank ids, and MPI errors surfacing as Status.
#include <mpi.h>

#include "gtest/gtest.h"
#include "hpc/mpi_error.h"

namespace {

TEST(MpiSmoke, AllreduceOfRankIdsIsTriangularNumber) {
  int rank = -1, size = 0;
  ASSERT_EQ(MPI_Comm_rank(MPI_COMM_WORLD, &rank), MPI_SUCCESS);
  ASSERT_EQ(MPI_Comm_size(MPI_COMM_WORLD, &size), MPI_SUCCESS);
  long long mine = rank, sum = -1;
  ASSERT_TRUE(dancegrpo::hpc::MpiCall(
                  MPI_Allreduce(&mine, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Allreduce")
                  .ok());
  EXPECT_EQ(sum, static_cast<long long>(size) * (size - 1) / 2);
}

TEST(MpiSmoke, InvalidRootBecomesStatusNamingTheCall) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int value = 0;
  // Every rank passes the same invalid root, so every rank gets MPI_ERR_ROOT locally.
  const int bad_root = size + 3;
  auto status = dancegrpo::hpc::MpiCall(MPI_Bcast(&value, 1, MPI_INT, bad_root, MPI_COMM_WORLD),
                                        "MPI_Bcast(root=%d)", bad_root);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("MPI_Bcast(root="), std::string::npos) << status;
  EXPECT_NE(status.message().find("root"), std::string::npos) << status;
}

}  // namespace
