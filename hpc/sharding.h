// ZeRO-2 style sharded AdamW over a Communicator.
//
// The parameters (identical on every rank, same order and shapes) are laid end to end in
// one flat fp32 index space, padded to N * S elements for N ranks; rank r owns the shard
// [r S, (r+1) S). The optimizer state (AdamW moments, and the EMA if enabled) exists only
// for the owned shard: about 1/N of the unsharded memory per rank.
//
// Step() is collective over the communicator:
//   1. the gradients are packed into the flat layout and reduce-scattered (SUM) in buckets
//      of `bucket_elements` per rank, so each rank receives the summed gradient of its shard;
//   2. the global gradient norm is all-reduced from the shards' squared norms and the shard
//      is scaled by max_norm / (norm + 1e-6) when that is below 1 (torch's clip_grad_norm_);
//   3. AdamW (torch's update, decoupled weight decay) steps the shard; the EMA follows;
//   4. the updated shards are all-gathered in buckets and copied back into the parameters.
// With one rank this is exactly unsharded AdamW with gradient clipping.
#ifndef DANCEGRPO_HPC_SHARDING_H_
#define DANCEGRPO_HPC_SHARDING_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

struct AdamWConfig {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-4;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  bool ema = false;
  double ema_decay = 0.995;
  int64_t bucket_elements = 1 << 22;  // per rank, per collective
};

class ShardedAdamW {
 public:
  // Collective: every rank passes the same parameter shapes in the same order.
  static absl::StatusOr<std::unique_ptr<ShardedAdamW>> Create(std::vector<torch::Tensor> parameters,
                                                              std::shared_ptr<Communicator> comm,
                                                              const AdamWConfig& config);

  // Steps with the gradients summed over all ranks; returns the global gradient norm
  // before clipping. Zeroes the gradients. Collective.
  absl::StatusOr<double> Step();
  void ZeroGrad();

  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  int64_t total_elements() const { return total_; }
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_size() const { return shard_size_; }
  int64_t steps_taken() const { return step_; }
  // Bytes of optimizer state held by this rank (moments and EMA of its shard).
  int64_t state_bytes() const;

  // The shard's state, for checkpoints: moments and EMA over [shard_begin, +shard_size).
  torch::Tensor& exp_avg() { return exp_avg_; }
  torch::Tensor& exp_avg_sq() { return exp_avg_sq_; }
  torch::Tensor& ema_shard() { return ema_; }
  void set_steps_taken(int64_t step) { step_ = step; }
  void set_lr(double lr) { config_.lr = lr; }
  const AdamWConfig& config() const { return config_; }

  // The full EMA weights, parallel to parameters(). Collective. Fails if EMA is off.
  absl::StatusOr<std::vector<torch::Tensor>> GatherEma();
  // Flattens tensors parallel to parameters() into the padded flat layout [N * S].
  torch::Tensor Flatten(const std::vector<torch::Tensor>& tensors) const;
  // The inverse: tensors shaped like parameters() from a flat [>= total] buffer.
  std::vector<torch::Tensor> Unflatten(const torch::Tensor& flat) const;

 private:
  ShardedAdamW() = default;
  absl::Status GatherShards(const torch::Tensor& shard, torch::Tensor& flat);

  AdamWConfig config_;
  std::shared_ptr<Communicator> comm_;
  std::vector<torch::Tensor> parameters_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  int64_t shard_begin_ = 0;
  int64_t shard_size_ = 0;
  int64_t step_ = 0;
  torch::Tensor exp_avg_, exp_avg_sq_, ema_;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_SHARDING_H_
