// The reward interface: a reward model scores decoded clips against their prompts, one
// score per sample. DanceGRPO combines several rewards by summing their per-group
// normalised advantages with weights (dancegrpo/advantage.h).
#ifndef DANCEGRPO_REWARDS_REWARD_H_
#define DANCEGRPO_REWARDS_REWARD_H_

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo::rewards {

struct Prompt {
  int64_t id = 0;    // index in the prompt set
  std::string text;  // what the encoder and the reward see
};

class Reward {
 public:
  virtual ~Reward() = default;
  virtual std::string name() const = 0;
  // videos: decoded clips [B, C, F, H, W] with values in [-1, 1]; prompts has B entries.
  // Returns B scores.
  virtual absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos,
                                                    const std::vector<Prompt>& prompts) = 0;
  // Starts scoring these clips without waiting: a served model (rewards/oip/) sends its
  // request, and the Score of the same clips (same storage, same prompts) then waits for the
  // answer. In-process rewards do nothing here. The clips must stay alive until Score.
  virtual void Start(const torch::Tensor& videos, const std::vector<Prompt>& prompts) {}
};

struct WeightedReward {
  std::shared_ptr<Reward> reward;
  double weight = 1.0;
};

// Scores with every reward: result[k][i] is reward k on sample i. Fails for clips that are
// not [B, C, F, H, W] with B = the prompts, and, naming the reward, the sample and its
// prompt, when a reward returns the wrong count or a value that is not finite (NaN rewards would silently poison every advantage of the group).
absl::StatusOr<std::vector<std::vector<double>>> ScoreAll(const std::vector<WeightedReward>& rewards,
                                                         const torch::Tensor& videos,
                                                         const std::vector<Prompt>& prompts);

}  // namespace dancegrpo::rewards

#endif  // DANCEGRPO_REWARDS_REWARD_H_
