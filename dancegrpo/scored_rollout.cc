#include "dancegrpo/scored_rollout.h"

#include <torch/torch.h>

#include <chrono>

#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {
using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }
}  // namespace

absl::StatusOr<ScoredRollout> RolloutAndScore(models::VelocityModel& policy, const RolloutConfig& config,
                                              const std::vector<double>& sigmas, int64_t iteration,
                                              const std::vector<SampleId>& samples,
                                              const models::Conditioning& conditions,
                                              const models::Conditioning& null_condition,
                                              models::LatentDecoder* decoder,
                                              const std::vector<rewards::WeightedReward>& rewards,
                                              const std::vector<rewards::Prompt>& prompts) {
  torch::NoGradGuard no_grad;
  ScoredRollout out;
  auto start = Clock::now();
  out.trajectories = Rollout(policy, config, sigmas, iteration, samples, conditions, null_condition);
  out.rollout_seconds = SecondsSince(start);
  start = Clock::now();
  out.clips = out.trajectories.final_x0;
  if (decoder) {
    DGRPO_ASSIGN_OR_RETURN(out.clips, decoder->Decode(out.clips));
    out.clips = out.clips.to(torch::kCPU, torch::kFloat32);  // rule rewards read CPU fp32; learned ones move it back
  }
  DGRPO_ASSIGN_OR_RETURN(out.scores, rewards::ScoreAll(rewards, out.clips, prompts));
  out.score_seconds = SecondsSince(start);
  return out;
}

}  // namespace dancegrpo
