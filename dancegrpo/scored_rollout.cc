#include "dancegrpo/scored_rollout.h"

#include <torch/torch.h>

#include <chrono>

#include "absl/strings/str_cat.h"
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
  // Each micro-batch, as soon as it is drawn: decoded (a video VAE's working set grows with
  // the batch: Wan's is GBs a clip), kept on the CPU in fp32 (rule rewards read them there;
  // learned ones move them back), and handed to every reward's Start: a served reward sends
  // its request now and is scored while the next micro-batch is drawn.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<torch::Tensor> parts;
  std::vector<std::vector<rewards::Prompt>> part_prompts;
  absl::Status failed;
  double decode_seconds = 0;
  auto done = [&](const Trajectories& so_far, int64_t begin, int64_t end) {
    if (!failed.ok()) return;
    const auto start = Clock::now();
    torch::Tensor part = so_far.final_x0.narrow(0, begin, end - begin);
    if (decoder) {
      auto decoded = decoder->Decode(part);
      if (!decoded.ok()) {
        failed = decoded.status();
        return;
      }
      part = decoded->to(torch::kCPU, torch::kFloat32);
    }
    ranges.emplace_back(begin, end);
    parts.push_back(part);
    part_prompts.emplace_back(prompts.begin() + begin, prompts.begin() + end);
    if (part.dim() == 5 && part.size(0) == end - begin)  // ScoreAll names any other shape
      for (const auto& wr : rewards) wr.reward->Start(parts.back(), part_prompts.back());
    decode_seconds += SecondsSince(start);
  };
  if (static_cast<int64_t>(prompts.size()) != static_cast<int64_t>(samples.size()))
    return absl::InvalidArgumentError(absl::StrCat("RolloutAndScore: ", prompts.size(), " prompts for ",
                                                   samples.size(), " samples"));
  auto start = Clock::now();
  out.trajectories = Rollout(policy, config, sigmas, iteration, samples, conditions, null_condition, done);
  out.rollout_seconds = SecondsSince(start) - decode_seconds;
  if (!failed.ok()) return failed;
  start = Clock::now();
  // Scored per micro-batch, the batches the requests were sent with; [reward][sample].
  for (size_t k = 0; k < parts.size(); ++k) {
    DGRPO_ASSIGN_OR_RETURN(auto scores, rewards::ScoreAll(rewards, parts[k], part_prompts[k]));
    if (out.scores.empty()) out.scores.resize(scores.size());
    for (size_t r = 0; r < scores.size(); ++r) out.scores[r].insert(out.scores[r].end(), scores[r].begin(), scores[r].end());
  }
  if (parts.empty()) {  // no samples on this rank
    out.clips = out.trajectories.final_x0;
    DGRPO_ASSIGN_OR_RETURN(out.scores, rewards::ScoreAll(rewards, out.clips, prompts));
  } else {
    out.clips = parts.size() == 1 ? parts[0] : torch::cat(parts);
  }
  out.score_seconds = decode_seconds + SecondsSince(start);
  return out;
}

}  // namespace dancegrpo
