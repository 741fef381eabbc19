// main() for GoogleTest binaries that run under mpirun (see tools/mpi_test.bzl).
//   - MPI is initialised before the tests and finalised after them; MPI_COMM_WORLD
//     returns errors instead of aborting, so tests can assert on them.
//   - Only rank 0 prints the full GoogleTest report and writes the XML file; the other
//     ranks print their failures, each line prefixed with the rank.
//   - The exit code is the same on every rank: non-zero if any rank had a failure.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "hpc/mpi_error.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] FAILURE at %s:%d\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
    std::fflush(stderr);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  dancegrpo::hpc::UseReturnErrorsOn(MPI_COMM_WORLD);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (rank != 0) {
    // Bazel's premature-exit marker and XML report belong to rank 0 alone.
    unsetenv("TEST_PREMATURE_EXIT_FILE");
    unsetenv("XML_OUTPUT_FILE");
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    ::testing::GTEST_FLAG(output) = "";
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int local = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any != 0 && local == 0) {
    std::fprintf(stderr, "[rank 0] passed locally, but another rank failed (see its lines)\n");
  }
  MPI_Finalize();
  return any;
}
