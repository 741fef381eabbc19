#include "rewards/reward.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dancegrpo::rewards {

absl::StatusOr<std::vector<std::vector<double>>> ScoreAll(const std::vector<WeightedReward>& rewards,
                                                         const torch::Tensor& videos,
                                                         const std::vector<Prompt>& prompts) {
  if (rewards.empty()) return absl::InvalidArgumentError("no reward configured: add at least one reward");
  if (!videos.defined() || videos.dim() != 5 || videos.size(0) != static_cast<int64_t>(prompts.size()))
    return absl::InvalidArgumentError(absl::StrCat(
        "the rewards take clips [B, C, F, H, W] with one prompt each; got ",
        videos.defined() ? absl::StrCat(videos.dim(), "-d clips of ", videos.dim() ? videos.size(0) : 0) : "no clips",
        " and ", prompts.size(), " prompts"));
  // Served models send their requests first, so they score while the rest run here.
  for (const auto& wr : rewards) wr.reward->Start(videos, prompts);
  std::vector<std::vector<double>> out;
  for (const auto& wr : rewards) {
    auto scores = wr.reward->Score(videos, prompts);
    if (!scores.ok()) {
      return absl::Status(scores.status().code(),
                          absl::StrCat("reward '", wr.reward->name(), "': ", scores.status().message()));
    }
    if (scores->size() != prompts.size()) {
      return absl::InternalError(absl::StrCat("reward '", wr.reward->name(), "' returned ", scores->size(),
                                              " scores for ", prompts.size(), " samples"));
    }
    for (size_t i = 0; i < scores->size(); ++i) {
      if (!std::isfinite((*scores)[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "reward '", wr.reward->name(), "' returned ", (*scores)[i], " for sample ", i, " (prompt '",
            prompts[i].text, "'); fix the reward model or its input: a non-finite reward would ",
            "corrupt the advantages of its whole group"));
      }
    }
    out.push_back(*std::move(scores));
  }
  return out;
}

}  // namespace dancegrpo::rewards
