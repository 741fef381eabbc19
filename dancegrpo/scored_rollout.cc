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
    // One micro-batch at a time, as the policy runs: a video VAE's working set grows with the
    // batch (Wan's: GBs a clip), and the clips are kept on the CPU in fp32 (rule rewards read
    // them there; learned ones move them back).
    const int64_t n = out.clips.size(0);
    std::vector<torch::Tensor> parts;
    for (const auto& [begin, end] : MicroBatches(n, config.micro_batch)) {
      DGRPO_ASSIGN_OR_RETURN(auto part, decoder->Decode(out.clips.narrow(0, begin, end - begin)));
      parts.push_back(part.to(torch::kCPU, torch::kFloat32));
    }
    out.clips = parts.size() == 1 ? parts[0] : torch::cat(parts);
  }
  DGRPO_ASSIGN_OR_RETURN(out.scores, rewards::ScoreAll(rewards, out.clips, prompts));
  out.score_seconds = SecondsSince(start);
  return out;
}

}  // namespace dancegrpo
