#include "hpc/topology.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {

absl::StatusOr<Topology> Topology::Make(int world_size, int world_rank, int sp) {
  if (sp < 1) return absl::InvalidArgumentError(absl::StrCat("sequence parallel size sp = ", sp, "; it must be >= 1"));
  if (world_size % sp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("sp = ", sp, " does not divide the world of ", world_size,
                                                   " ranks; launch a multiple of ", sp, " ranks or choose an sp ",
                                                   "that divides ", world_size));
  }
  Topology t;
  t.world_size = world_size;
  t.world_rank = world_rank;
  t.sp = sp;
  t.dp = world_size / sp;
  t.dp_rank = world_rank / sp;
  t.sp_rank = world_rank % sp;
  return t;
}

absl::StatusOr<SampleLayout> SampleLayout::Make(int64_t prompts, int group_size, const Topology& t) {
  SampleLayout l;
  l.group_size = group_size;
  l.global_samples = prompts * group_size;
  if (l.global_samples % t.dp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the global batch of ", l.global_samples, " samples (", prompts, " prompts x ", group_size,
        ") does not split over ", t.dp, " data-parallel ranks; make prompts x group size a multiple of ", t.dp));
  }
  l.samples_per_rank = l.global_samples / t.dp;
  if (l.samples_per_rank % group_size != 0 && group_size % l.samples_per_rank != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "each rank would hold ", l.samples_per_rank, " samples, so a group of ", group_size,
        " would straddle ranks unevenly; samples per rank must be a multiple of the group size or divide it"));
  }
  l.ranks_per_group = l.samples_per_rank >= group_size ? 1 : static_cast<int>(group_size / l.samples_per_rank);
  l.first_sample = t.dp_rank * l.samples_per_rank;
  return l;
}

absl::StatusOr<ProcessGrid> ProcessGrid::Create(std::shared_ptr<Communicator> world, int sp) {
  auto t = Topology::Make(world->size(), world->rank(), sp);
  if (!t.ok()) return t.status();
  ProcessGrid g;
  g.topology = *t;
  g.world = world;
  auto dp = world->Split(/*color=*/t->sp_rank, /*key=*/t->dp_rank);
  if (!dp.ok()) return dp.status();
  auto spc = world->Split(/*color=*/t->dp_rank, /*key=*/t->sp_rank);
  if (!spc.ok()) return spc.status();
  g.dp = *dp;
  g.sp = *spc;
  return g;
}

absl::StatusOr<std::shared_ptr<Communicator>> ProcessGrid::GroupCommunicator(const SampleLayout& layout) const {
  // Split dp by group; every world rank takes part (sp ranks use their own dp comm).
  return dp->Split(/*color=*/topology.dp_rank / layout.ranks_per_group, /*key=*/topology.dp_rank);
}

int IntraOpThreads(int affinity_cpus, int machine_cpus, int ranks_on_node, const char* omp_num_threads) {
  if (omp_num_threads != nullptr && std::atoi(omp_num_threads) > 0) return std::atoi(omp_num_threads);
  if (affinity_cpus > 0 && affinity_cpus < machine_cpus) return affinity_cpus;  // bound by the launcher
  return std::max(1, std::max(machine_cpus, affinity_cpus) / std::max(1, ranks_on_node));
}

int IntraOpThreadsForThisProcess(int ranks_on_node) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  const int machine = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return IntraOpThreads(affinity, machine, ranks_on_node, std::getenv("OMP_NUM_THREADS"));
}

}  // namespace dancegrpo::hpc
