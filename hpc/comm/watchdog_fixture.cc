// A job where one rank skips a collective, for watchdog_test.sh:
//   watchdog_fixture SKIP_RANK TIMEOUT_SECONDS
// Every rank joins two all-reduces; then SKIP_RANK skips the third and sleeps (stuck in
// its own work) while the others wait in it. The watchdog must end the job.
#include <mpi.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "hpc/comm/mpi_communicator.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int skip = argc > 1 ? std::atoi(argv[1]) : 1;
  const double timeout = argc > 2 ? std::atof(argv[2]) : 3.0;
  auto comm = dancegrpo::hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {timeout});
  if (!comm.ok()) return 1;
  auto x = torch::ones({16});
  for (int i = 0; i < 2; ++i) {
    if (!(*comm)->AllReduce(x, dancegrpo::hpc::ReduceOp::kSum).ok()) return 1;
  }
  if ((*comm)->rank() == skip) {
    std::fprintf(stderr, "rank %d: skipping collective #3\n", skip);
    sleep(120);
  } else {
    (void)(*comm)->AllReduce(x, dancegrpo::hpc::ReduceOp::kSum);
  }
  std::printf("rank %d: finished without the watchdog firing\n", (*comm)->rank());
  MPI_Finalize();
  return 0;
}
