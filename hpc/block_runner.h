// A model's blocks, run through one wrapper that owns ZeRO-3's parameter life cycle and
// activation checkpointing (in the manner of FSDP2's fully_shard around modules): the model
// exposes its list of blocks and says how to run one; the runner decides whether parameters
// are gathered around each block (the next block's gather started early) and released
// after it, whether training recomputes the block in backward instead of keeping its
// activations, and reduce-scatters each block's gradient as soon as its backward is done.
// The model itself always sees whole parameters, and no model family writes this again.
//
// Under ZeRO-3 (a gatherer set), training recomputes every block: its parameters are gone
// after its forward.
#ifndef DANCEGRPO_HPC_BLOCK_RUNNER_H_
#define DANCEGRPO_HPC_BLOCK_RUNNER_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "hpc/zero3.h"

namespace dancegrpo::hpc {

class BlockRunner {
 public:
  // Runs block `index` on the hidden state and the inputs every block shares (`shared`, e.g.
  // a DiT's time embedding and text context; they may need gradients). It is kept until the
  // backward pass, which calls it again to recompute the block: capture by value.
  using BlockFunction = std::function<torch::Tensor(int64_t index, const torch::Tensor& hidden,
                                                    const std::vector<torch::Tensor>& shared)>;

  // ZeRO-3's shards of the blocks (one gather group per block), or null: whole parameters.
  void set_shards(std::shared_ptr<ShardedParameters> shards) { shards_ = std::move(shards); }
  const std::shared_ptr<ShardedParameters>& shards() const { return shards_; }
  // Activation checkpointing: with gradients, keep only each block's inputs and recompute
  // it in backward. Always on with shards.
  void set_checkpointing(bool on) { checkpointing_ = on; }
  bool checkpointing() const { return checkpointing_ || shards_ != nullptr; }

  // hidden = run(i, hidden, shared) for each block i in order. `blocks[i]` is the module
  // whose parameters block i uses (to know whether it trains).
  torch::Tensor Run(const std::vector<torch::nn::Module*>& blocks, torch::Tensor hidden,
                    const std::vector<torch::Tensor>& shared, const BlockFunction& run);

 private:
  std::shared_ptr<ShardedParameters> shards_;
  bool checkpointing_ = false;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_BLOCK_RUNNER_H_
