// Evaluation: sample clips for a set of prompts with the policy (the training sampler, with
// fixed noise keys, so base and trained policies see the same noise) and score them with
// every reward.
#ifndef DANCEGRPO_DANCEGRPO_EVALUATE_H_
#define DANCEGRPO_DANCEGRPO_EVALUATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/sde.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo {

struct EvalConfig {
  uint64_t seed = 12345;
  int samples_per_prompt = 4;
  int steps = 10;
  double shift = 1.0;
  SdeConfig sde;
  int micro_batch = 32;
  std::vector<int64_t> latent_shape;
  models::LatentDecoder* decoder = nullptr;  // null: the rewards see the latents
};

struct EvalResult {
  std::vector<std::string> reward_names;
  std::vector<double> reward_means;
  std::vector<std::vector<double>> scores;  // [reward][sample]; sample = prompt * samples + j
  torch::Tensor clips;  // [prompts * samples, C, F, H, W], decoded, on the CPU
};

absl::StatusOr<EvalResult> EvaluatePolicy(models::VelocityModel& policy, models::PromptEncoder& encoder,
                                          const std::vector<rewards::Prompt>& prompts,
                                          const std::vector<rewards::WeightedReward>& rewards, const EvalConfig& config);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_EVALUATE_H_
