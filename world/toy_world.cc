#include "world/toy_world.h"

#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "dancegrpo/rng.h"

namespace dancegrpo::toy {

std::vector<rewards::Prompt> TargetPrompts(int num_targets) {
  std::vector<rewards::Prompt> out;
  for (int k = 0; k < num_targets; ++k) out.push_back({k, absl::StrCat("target ", k)});
  return out;
}

namespace {
int TargetOf(const std::string& text) {
  int k = -1;
  if (absl::StartsWith(text, "target ") && absl::SimpleAtoi(text.substr(7), &k)) return k;
  return -1;
}
}  // namespace

absl::StatusOr<models::Conditioning> OneHotPromptEncoder::Encode(const std::vector<std::string>& prompts) {
  models::Conditioning c;
  c.pooled = torch::zeros({static_cast<int64_t>(prompts.size()), num_targets_});
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int k = TargetOf(prompts[i]);
    if (k >= 0 && k < num_targets_) c.pooled[i][k] = 1.0;
  }
  return c;
}

TargetRegionReward::TargetRegionReward(int num_targets, std::vector<int64_t> latent_shape, uint64_t seed,
                                       double scale) {
  std::vector<torch::Tensor> ts;
  for (int k = 0; k < num_targets; ++k)
    ts.push_back(scale * KeyedNormal({seed, RandomStream::kInit, -1, k, -1, -1}, latent_shape));
  targets_ = torch::stack(ts);
}

absl::StatusOr<std::vector<double>> TargetRegionReward::Score(const torch::Tensor& videos,
                                                              const std::vector<rewards::Prompt>& prompts) {
  std::vector<double> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int k = TargetOf(prompts[i].text);
    if (k < 0 || k >= targets_.size(0))
      return absl::InvalidArgumentError(absl::StrCat("prompt '", prompts[i].text, "' names no known target"));
    out.push_back(std::exp(-(videos[i] - targets_[k]).pow(2).mean().item<double>()));
  }
  return out;
}

}  // namespace dancegrpo::toy
