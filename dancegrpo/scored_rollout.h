// Rollout, decoding and scoring: the one path from a policy to rewarded clips, shared by
// training (trainer.h) and evaluation (evaluate.h), so both sample and score alike.
#ifndef DANCEGRPO_DANCEGRPO_SCORED_ROLLOUT_H_
#define DANCEGRPO_DANCEGRPO_SCORED_ROLLOUT_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/rollout.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo {

struct ScoredRollout {
  Trajectories trajectories;
  // What the rewards saw: the decoded clips on the CPU in fp32, or x0_hat itself (where it
  // is) without a decoder.
  torch::Tensor clips;
  std::vector<std::vector<double>> scores;  // [reward][sample]
  double rollout_seconds = 0;               // the SDE rollout alone
  double score_seconds = 0;                 // decoding, and scoring not hidden behind the rollout
};

// Draws `samples` (rollout.h), decodes their x0_hat with `decoder` (null: none) and scores
// the clips with every reward against `prompts` (one per sample). Runs without gradients.
// Pipelined by micro-batch: each is decoded as soon as it is drawn and handed to the rewards'
// Start, so a served reward (rewards/oip/) scores micro-batch k while k + 1 is drawn; the
// rewards then score micro-batch by micro-batch (the batches the requests carried).
absl::StatusOr<ScoredRollout> RolloutAndScore(models::VelocityModel& policy, const RolloutConfig& config,
                                              const std::vector<double>& sigmas, int64_t iteration,
                                              const std::vector<SampleId>& samples,
                                              const models::Conditioning& conditions,
                                              const models::Conditioning& null_condition,
                                              models::LatentDecoder* decoder,
                                              const std::vector<rewards::WeightedReward>& rewards,
                                              const std::vector<rewards::Prompt>& prompts);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_SCORED_ROLLOUT_H_
