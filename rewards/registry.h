// Rewards by name. Every reward a --rewards spec can name is registered here with a factory,
// at static initialisation, by the library that defines it: the generic ones
// (motion_quality, jpeg, torchscript=<path>) in rewards/video_rewards.cc, a world's rule
// rewards in that world (world/shapes_rewards.cc). A program offers the rewards of the
// libraries it links; nothing here knows a world.
//
// A name may take an argument after '=': "torchscript=hps.pt" asks the factory registered as
// "torchscript" for the model in hps.pt.
#ifndef DANCEGRPO_REWARDS_REGISTRY_H_
#define DANCEGRPO_REWARDS_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "rewards/reward.h"

namespace dancegrpo::rewards {

struct RewardArgs {
  std::string argument;  // after '=', or empty
  torch::Device device = torch::kCPU;  // where a learned model runs
};
using RewardFactory = std::function<absl::StatusOr<std::shared_ptr<Reward>>(const RewardArgs& args)>;

struct RewardInfo {
  std::string name;
  std::string help;       // one line, for error messages and --help texts
  bool takes_argument = false;  // name=<argument> (e.g. a model path), required
};

// Registers a reward; a second registration of a name is a broken invariant (CHECK).
void RegisterReward(const RewardInfo& info, RewardFactory factory);

// For registration at static initialisation: `static RewardRegistration r({...}, factory);`
// in a library built with alwayslink, so that linking the library registers its rewards.
struct RewardRegistration {
  RewardRegistration(const RewardInfo& info, RewardFactory factory) { RegisterReward(info, std::move(factory)); }
};

// The registered rewards, by name.
std::vector<RewardInfo> RegisteredRewards();

// A reward set: one --rewards item that yields several weighted rewards, each its own
// advantage term ("oip=HOST:PORT/videoalign?outputs=VQ:1;MQ:0.5;TA:1", rewards/oip/). The
// item's whole argument goes to the factory (weights are inside it, not after a ':').
using RewardSetFactory = std::function<absl::StatusOr<std::vector<WeightedReward>>(const RewardArgs& args)>;
void RegisterRewardSet(const RewardInfo& info, RewardSetFactory factory);
struct RewardSetRegistration {
  RewardSetRegistration(const RewardInfo& info, RewardSetFactory factory) {
    RegisterRewardSet(info, std::move(factory));
  }
};
std::vector<RewardInfo> RegisteredRewardSets();

// Builds the reward `spec` names ("jpeg", "torchscript=model.pt"). Fails for an unknown name
// (listing the registered ones), a missing or unexpected argument, or the factory's error.
absl::StatusOr<std::shared_ptr<Reward>> MakeReward(const std::string& spec, const torch::Device& device = torch::kCPU);

// Parses "alignment:1,motion_quality:0.3,jpeg:0.1" (weights default to 1); an item that
// starts with a reward set's name and '=' is that set's (its rewards, in order).
absl::StatusOr<std::vector<WeightedReward>> ParseRewardSpec(const std::string& spec,
                                                           const torch::Device& device = torch::kCPU);

}  // namespace dancegrpo::rewards

#endif  // DANCEGRPO_REWARDS_REGISTRY_H_
