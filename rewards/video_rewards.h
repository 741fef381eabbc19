// The generic rewards for generated clips, registered by name (rewards/registry.h) when
// this library is linked:
//   motion_quality: temporal smoothness and consistency: 1 - mean |x_{t+1} - x_t| / 2,
//            times 1 / (1 + relative std of the foreground area over frames);
//   jpeg:    JPEG compressibility (as in DDPO), 1 - bytes / raw bytes of each frame encoded
//            by libjpeg-turbo at quality 90, averaged over frames;
//   torchscript=<path>: a learned reward model exported from Python (HPS-v2.1, PickScore,
//            CLIP or VideoAlign-style heads): forward(videos) or forward(videos, prompts) -> [B].
// A world's own rewards live in that world (world/shapes_rewards.h).
#ifndef DANCEGRPO_REWARDS_VIDEO_REWARDS_H_
#define DANCEGRPO_REWARDS_VIDEO_REWARDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "rewards/registry.h"
#include "rewards/reward.h"

namespace dancegrpo::rewards {

// A TorchScript reward model. Its forward takes the clips [B, C, F, H, W] (in [-1, 1]),
// and optionally the prompts as List[str]; it returns B scores.
class TorchScriptReward : public Reward {
 public:
  // The module is loaded onto `device`, and the clips are moved there to be scored.
  static absl::StatusOr<std::shared_ptr<TorchScriptReward>> Load(const std::string& path,
                                                                const torch::Device& device = torch::kCPU);
  std::string name() const override { return name_; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::string name_;
};

}  // namespace dancegrpo::rewards

#endif  // DANCEGRPO_REWARDS_VIDEO_REWARDS_H_
