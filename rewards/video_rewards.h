// Rewards for generated clips.
//
// Rule-based, in the GenEval spirit, for shapes-world prompts (world/shapes_world.h). The
// foreground of a frame is every pixel far (L2 > 1 in [-1, 1] RGB) from the prompt's
// background colour.
//   colour:  the fraction of foreground pixels whose nearest palette colour is the one asked;
//   count:   the fraction of frames with exactly the asked number of objects (4-connected
//            foreground components of at least 2 pixels): GenEval's counting check per frame;
//   motion:  the foreground centroid's displacement from the first to the last frame along
//            the asked direction, d, over the expected travel L: clamp(d / L, 0, 1)
//            (1 = moved as asked; still, sideways or the opposite way = 0: no credit for chance);
//   alignment: the mean of colour, count and motion.
// Generic:
//   motion_quality: temporal smoothness and consistency: 1 - mean |x_{t+1} - x_t| / 2,
//            times 1 / (1 + relative std of the foreground area over frames);
//   jpeg:    JPEG compressibility (as in DDPO), 1 - bytes / raw bytes of each frame encoded
//            by libjpeg-turbo at quality 90, averaged over frames;
//   torchscript: a learned reward model exported from Python (HPS-v2.1, PickScore, CLIP or
//            VideoAlign-style heads): forward(videos) or forward(videos, prompts) -> [B].
#ifndef DANCEGRPO_REWARDS_VIDEO_REWARDS_H_
#define DANCEGRPO_REWARDS_VIDEO_REWARDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "rewards/reward.h"

namespace dancegrpo::rewards {

// Builds a reward by name: colour, count, motion, alignment, motion_quality, jpeg, or
// torchscript=<path to a saved TorchScript module>.
// TorchScript models are loaded onto `device`.
absl::StatusOr<std::shared_ptr<Reward>> MakeReward(const std::string& name, const torch::Device& device = torch::kCPU);

// Parses "alignment:1,motion_quality:0.3,jpeg:0.1" (weights default to 1).
absl::StatusOr<std::vector<WeightedReward>> ParseRewardSpec(const std::string& spec,
                                                           const torch::Device& device = torch::kCPU);

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
