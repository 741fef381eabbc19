// Sharded AdamW over a Communicator: ZeRO-2, and the optimizer half of ZeRO-3 (hpc/zero3.h).
//
// The parameters (identical on every rank, same order and shapes) are laid end to end in
// one flat fp32 index space, padded to N * S elements for N ranks; rank r owns the shard
// [r S, (r+1) S). The optimizer state (AdamW moments, and the EMA if enabled) exists only
// for the owned shard: about 1/N of the unsharded memory per rank.
//
// Step() is collective over the communicator:
//   1. the gradients are packed into the flat layout and reduce-scattered (SUM) in buckets
//      of `bucket_elements` per rank (hpc/buckets.h), so each rank receives the summed gradient of its shard;
//   2. the global gradient norm is all-reduced from the shards' squared norms and the shard
//      is scaled by max_norm / (norm + 1e-6) when that is below 1 (torch's clip_grad_norm_);
//   3. AdamW (torch's update, decoupled weight decay) steps the shard; the EMA follows;
//   4. the updated shards are all-gathered in buckets and copied back into the parameters.
// With one rank this is exactly unsharded AdamW with gradient clipping.
//
// Mixed precision: the parameters may be compute copies in bf16 (or fp16). Then every rank
// keeps fp32 master weights for its shard beside the moments; the bf16 gradients are
// widened to fp32 before the reduce-scatter (or reduced in `reduce_dtype` = bf16, halving
// the traffic), AdamW steps the fp32 master, and the shards are all-gathered in the
// parameters' dtype, so every rank's compute copy is the rounded master. With fp32
// parameters the parameters themselves are the master (nothing extra is kept).
//
// A step whose global gradient norm is not finite (an overflow, a NaN reward that slipped
// through, a bad batch) is skipped on every rank alike: no weight or moment changes, the
// gradients are zeroed, and skipped_steps() counts it.
//
// Buffers live on the parameters' device, so the same code runs over MPI on CPU tensors
// and over NCCL on CUDA tensors.
//
// ZeRO-3 (hpc/zero3.h): parameters that belong to a trained unit of a ShardedParameters are
// not held whole between uses. Their slices are part of this optimizer's state (the unit's
// master and gradient slices are views into it), their gradients arrive already summed
// (ReduceGradients during backward), and a step refreshes the unit's compute slice instead
// of all-gathering. The other trained parameters (embeddings, head: small) stay replicated
// and are handled as above. The state is then [replicated shard | unit slices ...].
//
// Checkpoints address the state through Segments(): the logical layout is the trained
// parameters end to end in their order, whatever the stage and rank count.
#ifndef DANCEGRPO_HPC_SHARDING_H_
#define DANCEGRPO_HPC_SHARDING_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "hpc/comm/communicator.h"
#include "hpc/zero3.h"

namespace dancegrpo::hpc {

struct AdamWConfig {
  double lr = 3e-3;  // the trainer's --lr default too (dancegrpo/trainer_config.h)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-4;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  bool ema = false;
  double ema_decay = 0.995;
  // Elements per rank of one bucketed collective; 0 = hpc::BucketElementsPerRank(ranks)
  // (32 MB of fp32 messages whatever the world size, hpc/buckets.h).
  int64_t bucket_elements = 0;
  // The dtype gradients are reduce-scattered in: fp32 (default) or bf16.
  torch::ScalarType reduce_dtype = torch::kFloat32;
};

// Fails, naming the field and the fix, for a non-finite or non-positive learning rate,
// betas outside [0, 1), a non-positive eps, a negative or non-finite weight decay or EMA
// decay outside [0, 1], or a reduce dtype other than fp32/bf16.
absl::Status ValidateAdamWConfig(const AdamWConfig& config);

class ShardedAdamW {
 public:
  // Collective: every rank passes the same parameter shapes in the same order. The
  // parameters share one floating dtype (fp32, or bf16/fp16 compute copies) and device.
  // With `sharded` (ZeRO-3), parameters of its trained units are stepped in their slices.
  static absl::StatusOr<std::unique_ptr<ShardedAdamW>> Create(std::vector<torch::Tensor> parameters,
                                                              std::shared_ptr<Communicator> comm,
                                                              const AdamWConfig& config,
                                                              std::shared_ptr<ShardedParameters> sharded = nullptr);

  // Steps with the gradients summed over all ranks; returns the global gradient norm
  // before clipping (not finite: the step was skipped). Zeroes the gradients. Collective.
  absl::StatusOr<double> Step();
  void ZeroGrad();

  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // Elements of all trained parameters (the logical flat vector).
  int64_t total_elements() const { return total_; }
  // The full shape of parameter i (a ZeRO-3 parameter holds no data between uses).
  const std::vector<int64_t>& shape(size_t i) const { return shapes_[i]; }
  // The replicated parameters' shard: [shard_begin, +replicated_shard) of their flat space.
  int64_t shard_begin() const { return shard_begin_; }
  // Elements of this rank's state (replicated shard and unit slices, padding included).
  int64_t shard_size() const { return shard_size_; }
  int zero_stage() const { return sharded_ ? 3 : 2; }

  // Where this rank's state lives in the logical vector: state[state_offset, +count) holds
  // logical elements [logical_offset, +count). Sorted by logical offset; padding excluded.
  struct Segment {
    int64_t state_offset;
    int64_t logical_offset;
    int64_t count;
  };
  const std::vector<Segment>& Segments() const { return segments_; }
  // Collective: sets the masters (and through them every compute copy) from this rank's
  // state-shaped fp32 values [shard_size] (for checkpoint restore).
  absl::Status LoadMasterShard(const torch::Tensor& state);
  // Collective: the full logical fp32 weights [total_elements] on every rank (for tests).
  absl::StatusOr<torch::Tensor> GatherMasters();
  int64_t steps_taken() const { return step_; }
  // Steps skipped because the gradient norm was not finite (since Create).
  int64_t skipped_steps() const { return skipped_; }
  // True when the parameters are compute copies and fp32 masters are kept.
  bool keeps_master() const { return master_.defined(); }
  // Bytes of optimizer state held by this rank (moments and EMA of its shard).
  int64_t state_bytes() const;

  // The fp32 weights of this rank's state [shard_size]: the master, or the (replicated)
  // parameters themselves when they are fp32 under ZeRO-2.
  torch::Tensor MasterShard() const;
  // Sets every replicated parameter (rounded to its dtype) and their master shard from the
  // fp32 flat vector of the replicated parameters (Flatten's layout). ZeRO-3 units keep
  // the masters they were sharded with.
  void LoadFlat(const torch::Tensor& flat);
  // The shard's state, for checkpoints: moments and EMA over [shard_begin, +shard_size).
  torch::Tensor& exp_avg() { return exp_avg_; }
  torch::Tensor& exp_avg_sq() { return exp_avg_sq_; }
  torch::Tensor& ema_shard() { return ema_; }
  void set_steps_taken(int64_t step) { step_ = step; }
  void set_lr(double lr) { config_.lr = lr; }
  const AdamWConfig& config() const { return config_; }

  // The full EMA weights, parallel to parameters(). Collective. Fails if EMA is off.
  absl::StatusOr<std::vector<torch::Tensor>> GatherEma();
  // Flattens tensors parallel to parameters() into the replicated parameters' padded flat
  // layout [N * S] (with no ZeRO-3 units: all parameters, end to end).
  torch::Tensor Flatten(const std::vector<torch::Tensor>& tensors) const;
  // The inverse: tensors shaped like the replicated parameters from a flat buffer.
  std::vector<torch::Tensor> Unflatten(const torch::Tensor& flat) const;

 private:
  ShardedAdamW() = default;
  absl::Status GatherShards(const torch::Tensor& shard, torch::Tensor& flat);

  absl::Status GatherReplicated(const torch::Tensor& shard);

  AdamWConfig config_;
  std::shared_ptr<Communicator> comm_;
  std::shared_ptr<ShardedParameters> sharded_;
  std::vector<torch::Tensor> parameters_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int> replicated_;        // indices into parameters_
  std::vector<int64_t> offsets_;       // of replicated_[i] in the replicated flat space
  int64_t replicated_total_ = 0, replicated_shard_ = 0;
  std::vector<int> units_;             // trained units of sharded_, in state order
  std::vector<int64_t> unit_state_offsets_;
  std::vector<Segment> segments_;
  int64_t total_ = 0;
  int64_t shard_begin_ = 0;
  int64_t shard_size_ = 0;
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  torch::TensorOptions options_;  // fp32 on the parameters' device
  torch::Tensor exp_avg_, exp_avg_sq_, ema_, master_, grad_;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_SHARDING_H_
