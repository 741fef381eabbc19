// The process grid: world = dp x sp, and how a global batch of sampling groups maps onto it.
//
// Ranks are laid out sp-major: the sp ranks of one data-parallel replica are consecutive
// (world rank = dp_rank * sp + sp_rank), so a sequence-parallel group, which exchanges
// activations in every attention layer, stays inside a node. Data-parallel replicas hold
// consecutive slices of the global sample list, which is ordered by prompt and then by
// group member; so the G samples of one prompt (a sampling group) also sit on consecutive
// ranks. Sub-communicators:
//   dp:    the ranks with the same sp_rank (one per replica): gradient/reward exchanges;
//   sp:    the ranks of one replica: Ulysses all-to-alls;
//   group: the dp ranks that share a prompt's sampling group: reward all-gathers.
#ifndef DANCEGRPO_HPC_TOPOLOGY_H_
#define DANCEGRPO_HPC_TOPOLOGY_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

struct Topology {
  int world_size = 1;
  int world_rank = 0;
  int sp = 1;
  int dp = 1;
  int dp_rank = 0;
  int sp_rank = 0;

  // Fails, with the fix, when sp does not divide the world.
  static absl::StatusOr<Topology> Make(int world_size, int world_rank, int sp);
};

// How `prompts` prompts x `group_size` samples spread over the dp replicas.
struct SampleLayout {
  int64_t global_samples = 0;
  int64_t samples_per_rank = 0;
  int64_t first_sample = 0;     // this replica's first global sample index
  int group_size = 1;
  int ranks_per_group = 1;      // > 1 when a sampling group spans several replicas

  // Fails, naming the numbers and the fix, when the samples do not split evenly over dp
  // or a sampling group would not lie on whole ranks.
  static absl::StatusOr<SampleLayout> Make(int64_t prompts, int group_size, const Topology& topology);
};

struct ProcessGrid {
  Topology topology;
  std::shared_ptr<Communicator> world;
  std::shared_ptr<Communicator> dp;
  std::shared_ptr<Communicator> sp;

  // Collective over `world`.
  static absl::StatusOr<ProcessGrid> Create(std::shared_ptr<Communicator> world, int sp);
  // The sampling-group communicator for a layout (a split of dp). Collective over world.
  absl::StatusOr<std::shared_ptr<Communicator>> GroupCommunicator(const SampleLayout& layout) const;
};

// Intra-op threads for one rank: OMP_NUM_THREADS when it is set (> 0); else, when the launcher
// bound the rank to fewer CPUs than the machine has, those CPUs; else the machine's CPUs shared
// by the ranks on this node. At least 1. (libtorch otherwise starts with whatever its OpenMP
// default is, 1 on some machines, all cores on others: too few for one rank, too many for 8.)
int IntraOpThreads(int affinity_cpus, int machine_cpus, int ranks_on_node, const char* omp_num_threads);
// The same for this process: its CPU affinity, the machine's CPUs and $OMP_NUM_THREADS.
int IntraOpThreadsForThisProcess(int ranks_on_node);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_TOPOLOGY_H_
