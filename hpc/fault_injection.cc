#include "hpc/fault_injection.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace dancegrpo::hpc {
namespace {

struct Fault {
  bool armed = false;
  std::string phase;
  int64_t iteration = -1;
  int rank = 0;
};

Fault Parse() {
  Fault f;
  const char* spec = std::getenv("DGRPO_FAULT");
  if (spec == nullptr || *spec == '\0') return f;
  for (absl::string_view kv : absl::StrSplit(spec, ',')) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first == "phase") f.phase = p.second;
    if (p.first == "iteration") (void)absl::SimpleAtoi(p.second, &f.iteration);
    if (p.first == "rank") (void)absl::SimpleAtoi(p.second, &f.rank);
  }
  f.armed = !f.phase.empty();
  return f;
}

}  // namespace

void FaultPoint(const char* phase, int64_t iteration) {
  static const Fault fault = Parse();
  if (!fault.armed || fault.phase != phase || fault.iteration != iteration) return;
  int rank = 0, initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != fault.rank) return;
  std::fprintf(stderr, "DGRPO_FAULT: rank %d kills itself at %s of iteration %ld\n", rank, phase,
               static_cast<long>(iteration));
  std::fflush(stderr);
  kill(getpid(), SIGKILL);
}

}  // namespace dancegrpo::hpc
