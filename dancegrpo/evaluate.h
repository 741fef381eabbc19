// Evaluation: sample clips for a set of prompts with the policy (the training sampler, with
// fixed noise keys, so base and trained policies see the same noise) and score them with
// every reward.
#ifndef DANCEGRPO_DANCEGRPO_EVALUATE_H_
#define DANCEGRPO_DANCEGRPO_EVALUATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/sde.h"
#include "dancegrpo/trainer_config.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo {

struct EvalConfig {
  uint64_t seed = 12345;  // the noise seed (keep it apart from the training seed)
  int samples_per_prompt = 4;
  // The sampler and batch: a training run's (EvalConfigFor), or the caller's. Unset (0)
  // steps, shift or micro_batch are refused.
  int steps = 0;
  double shift = 0;
  SdeConfig sde;
  int micro_batch = 0;
  std::vector<int64_t> latent_shape;
  models::LatentDecoder* decoder = nullptr;  // null: the rewards see the latents
};

// An evaluation that samples as `run` does: its steps, shift, SDE (kind, noise, window),
// micro-batch and latent shape.
EvalConfig EvalConfigFor(const TrainerConfig& run);

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
