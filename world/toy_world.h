// A toy world in which GRPO must visibly learn, for tests and the quick demo: K prompts
// "target k", each asking for latents near a fixed target vector t_k. The encoder maps a
// prompt to a one-hot condition (the empty prompt to zeros), and the reward is
//   r = exp(-mean((x0 - t_k)^2))  in (0, 1].
#ifndef DANCEGRPO_WORLD_TOY_WORLD_H_
#define DANCEGRPO_WORLD_TOY_WORLD_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo::toy {

std::vector<rewards::Prompt> TargetPrompts(int num_targets);

class OneHotPromptEncoder : public models::PromptEncoder {
 public:
  explicit OneHotPromptEncoder(int num_targets) : num_targets_(num_targets) {}
  absl::StatusOr<models::Conditioning> Encode(const std::vector<std::string>& prompts) override;

 private:
  int num_targets_;
};

class TargetRegionReward : public rewards::Reward {
 public:
  // Targets are keyed normal vectors of `latent_shape`, scaled by `scale`.
  TargetRegionReward(int num_targets, std::vector<int64_t> latent_shape, uint64_t seed, double scale = 0.8);
  std::string name() const override { return "target"; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos,
                                            const std::vector<rewards::Prompt>& prompts) override;
  const torch::Tensor& targets() const { return targets_; }

 private:
  torch::Tensor targets_;  // [K, C, F, H, W]
};

}  // namespace dancegrpo::toy

#endif  // DANCEGRPO_WORLD_TOY_WORLD_H_
