// The policy interface that DanceGRPO fine-tunes: a rectified-flow velocity model
//   v = v_theta(x, sigma, c)
// for latents x shaped [B, C, F, H, W], one sigma per batch row (shape [B], in [0, 1];
// the model itself scales it to its timestep input, sigma * 1000), and a text condition.
//
// Contract that the algorithm relies on (dancegrpo/rollout, dancegrpo/update):
//   - rows are independent: row i of the output depends only on row i of the inputs;
//   - the forward pass is deterministic: the same inputs, in the same batch shape, give
//     the same bits. Rollout and training evaluate the same batch shapes, so the
//     recomputed log-probs equal the recorded ones exactly (ratio == 1 on-policy).
#ifndef DANCEGRPO_MODELS_VELOCITY_MODEL_H_
#define DANCEGRPO_MODELS_VELOCITY_MODEL_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hpc/comm/communicator.h"
#include "hpc/block_runner.h"

namespace dancegrpo::models {

// A batch of text conditions: `tokens` [B, L, D] and `token_mask` [B, L] (1 = real token)
// for cross-attention models, and/or a `pooled` vector [B, D]. At least one is present.
struct Conditioning {
  torch::Tensor pooled;
  torch::Tensor tokens;
  torch::Tensor token_mask;

  int64_t batch() const { return pooled.defined() ? pooled.size(0) : tokens.defined() ? tokens.size(0) : 0; }
  // The rows `index` (a 1-D int64 tensor) of every defined field.
  Conditioning Rows(const torch::Tensor& index) const;
  // Row-wise concatenation of several conditionings with the same fields.
  static Conditioning Cat(const std::vector<Conditioning>& parts);
  // Every defined field on `device` (no copy when it is already there).
  Conditioning To(const torch::Device& device) const;
};

class VelocityModel : public torch::nn::Module {
 public:
  // x: [B, C, F, H, W]; sigma: [B]; returns the velocity, shaped like x.
  virtual torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                                 const Conditioning& condition) = 0;
  // Splits each sample's token sequence over the ranks of `sp`: Ulysses (an all-to-all over
  // the heads) inside stages of `ulysses` consecutive ranks, ring attention across the
  // sp / ulysses stages. ulysses = 0 picks the largest degree dividing both sp and the heads.
  // Returns the Ulysses degree in use. Collective over `sp`. Models that cannot do it refuse,
  // and the trainer reports that sp > 1 needs such a model.
  virtual absl::StatusOr<int> SetSequenceParallel(std::shared_ptr<hpc::Communicator> sp, int ulysses) {
    return absl::UnimplementedError("this policy does not support sequence parallelism; use sp = 1 or a VideoDit");
  }
  // The blocks a wrapper runs one at a time (hpc/block_runner.h: ZeRO-3's gather, prefetch
  // and release, activation checkpointing), in the order the forward pass uses them, and
  // the runner the model runs them through. Models without blocks return none and null;
  // the trainer then reports that ZeRO-3 needs a model with blocks.
  virtual std::vector<torch::nn::Module*> Blocks() { return {}; }
  virtual hpc::BlockRunner* block_runner() { return nullptr; }
  // The device of the policy's weights (the CPU for a model without parameters). Callers
  // move inputs there; rollout and update keep their trajectories wherever they like.
  torch::Device device() const {
    const auto p = parameters();
    return p.empty() ? torch::Device(torch::kCPU) : p[0].device();
  }
  ~VelocityModel() override = default;
};

// Turns prompt texts into conditions. The empty prompt "" is the unconditional (null)
// condition used by classifier-free guidance.
class PromptEncoder {
 public:
  virtual ~PromptEncoder() = default;
  // Fails (naming the prompt) when a prompt cannot be encoded, e.g. a prompt missing
  // from a table of precomputed embeddings.
  virtual absl::StatusOr<Conditioning> Encode(const std::vector<std::string>& prompts) = 0;
};

// Maps latents [B, C, F, H, W] to decoded clips [B, 3, F', H', W'] in [-1, 1] for the
// rewards (a VAE decoder in a real pipeline). With no decoder the latents are the clips.
// Fails, naming the problem, for an output of the wrong shape or with non-finite values.
class LatentDecoder {
 public:
  virtual ~LatentDecoder() = default;
  virtual absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& latents) = 0;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_VELOCITY_MODEL_H_
