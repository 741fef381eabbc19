// ZeRO-3 parameter sharding (in the manner of FSDP and DeepSpeed ZeRO stage 3).
//
// The parameters of a model are grouped into units (for a DiT, a block's trained and a
// block's frozen parameters are two units). Each unit's parameters are laid end to end in a
// flat index space, padded to N * S elements for N ranks, and rank r keeps only the slice
// [r S, (r+1) S) of it: the compute copy (fp32, or bf16 under mixed precision) and, for a
// trained unit, the fp32 master. Between uses a sharded parameter holds no data (numel 0).
//
// The life of a unit in one forward/backward, driven by the model (see VideoDit's block
// runner, the one place that calls these):
//   Gather(u)       all-gather the compute slices; the parameters become views of the
//                   whole unit (the same tensors, so autograd and modules see no change);
//   ... forward ...
//   Release(u)      the parameters drop the gathered buffer;
//   backward, with activation checkpointing: Gather(u) again, recompute, back-propagate,
//   ReduceGradients(u)  reduce-scatter the unit's gradient (summed over ranks) into this
//                   rank's fp32 gradient slice, accumulating over micro-batches, and free
//                   the full gradients; then Release(u).
// Prefetch(group) starts the next group's all-gathers early (MPI_Iallgather), so they run
// while the current block computes; Gather(group) then only waits. Under NCCL the start
// is synchronous for now (see the note in zero3.cc).
//
// Sharding itself is local (no communication): every rank holds the same full weights
// once, at load, and keeps its slice. So ranks may materialise the model one at a time
// (ShardTurns) and a machine never holds more than one full copy.
#ifndef DANCEGRPO_HPC_ZERO3_H_
#define DANCEGRPO_HPC_ZERO3_H_

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

// What a model calls around a group of its parameters (e.g. one transformer block).
class ParameterGatherer {
 public:
  virtual ~ParameterGatherer() = default;
  // Makes the group's parameters whole. Collective over the sharding communicator.
  virtual absl::Status Gather(int group) = 0;
  // Frees the gathered parameters of the group (local).
  virtual void Release(int group) = 0;
  // After the group's backward: sums its gradients over ranks into the sharded gradient
  // and frees them. Collective.
  virtual absl::Status ReduceGradients(int group) = 0;
  // A hint that Gather(group) comes next.
  virtual void Prefetch(int group) { (void)group; }
};

struct ShardedUnit {
  int group = 0;                        // Gather(group) gathers every unit of the group
  bool trained = false;                 // keeps an fp32 master and a gradient slice
  std::vector<std::string> names;       // for messages
  std::vector<torch::Tensor> params;    // the live parameter tensors (data emptied)
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;         // within the unit's flat space
  int64_t total = 0;                    // elements of the unit
  int64_t shard_size = 0;               // S: ceil(total / N)
  torch::Tensor compute;                // [S] in the compute dtype, on the device
  torch::Tensor master;                 // [S] fp32 (trained units): may alias `compute`
  torch::Tensor grad;                   // [S] fp32 (trained units): summed gradient slice
};

class ShardedParameters : public ParameterGatherer {
 public:
  struct UnitSpec {
    int group = 0;
    bool trained = false;
    std::vector<std::string> names;
    std::vector<torch::Tensor> params;  // full fp32 values on the CPU (identical on every rank)
  };
  // Local: keeps this rank's slice of every unit, converted to `compute_dtype` on `device`
  // (trained units also keep the fp32 slice as master), and empties the parameters.
  static absl::StatusOr<std::shared_ptr<ShardedParameters>> Shard(std::vector<UnitSpec> units,
                                                                  std::shared_ptr<Communicator> comm,
                                                                  torch::ScalarType compute_dtype,
                                                                  torch::Device device,
                                                                  torch::ScalarType reduce_dtype = torch::kFloat32);

  absl::Status Gather(int group) override;
  void Release(int group) override;
  absl::Status ReduceGradients(int group) override;
  // Starts the group's all-gathers without waiting (Communicator::StartAllGather); Gather
  // then waits for them. One group ahead holds one more block in memory.
  void Prefetch(int group) override;
  int64_t prefetches() const { return prefetches_; }

  std::vector<ShardedUnit>& units() { return units_; }
  const std::vector<ShardedUnit>& units() const { return units_; }
  Communicator& comm() { return *comm_; }
  torch::ScalarType compute_dtype() const { return compute_dtype_; }
  void set_reduce_dtype(torch::ScalarType t) { reduce_dtype_ = t; }
  // Gradient elements per rank reduce-scattered at once (the send buffer is N of them);
  // hpc::BucketElementsPerRank(ranks) unless set.
  void set_bucket_elements(int64_t n) { bucket_elements_ = std::max<int64_t>(1, n); }
  // Bytes this rank keeps for the sharded parameters (compute slices and masters).
  int64_t resident_bytes() const;
  // Collectives issued by Gather/ReduceGradients so far (for tests and benchmarks).
  int64_t gathers() const { return gathers_; }
  // The unit holding `param` (same tensor), or -1.
  int UnitOf(const torch::Tensor& param) const;
  // After a master slice changed (optimizer step, checkpoint restore): refreshes the compute
  // slice from it. A no-op when they alias (fp32 on the master's device).
  void SyncCompute(int unit);
  // Makes the unit's master and gradient views of the given fp32 tensors (the optimizer's
  // contiguous state), copying the current values.
  void Adopt(int unit, torch::Tensor master_view, torch::Tensor grad_view);

 private:
  ShardedParameters() = default;
  std::vector<int> UnitsOf(int group) const;

  std::vector<ShardedUnit> units_;
  std::shared_ptr<Communicator> comm_;
  torch::ScalarType compute_dtype_ = torch::kFloat32;
  torch::ScalarType reduce_dtype_ = torch::kFloat32;
  int64_t bucket_elements_ = 0;  // set by Shard
  int64_t gathers_ = 0, prefetches_ = 0;
  struct Started {
    absl::Status status;
    std::vector<torch::Tensor> full;  // per unit of the group
    std::vector<std::unique_ptr<PendingCollective>> pending;
  };
  std::map<int, Started> started_;
};

// Runs `materialise` on one rank at a time (rank 0 first), with a barrier between turns, so
// that the full model exists on at most one rank of `comm` at once. Collective.
absl::Status ShardTurns(Communicator& comm, const std::function<absl::Status()>& materialise);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_ZERO3_H_
