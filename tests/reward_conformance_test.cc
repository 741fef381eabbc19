// Every reward a program can name (rewards/registry.h), held to one contract: one finite
// score per clip, each score belongs to its own clip and prompt (permuting the batch permutes
// the scores), and bad input is refused with a message instead of a crash. This binary links
// the generic rewards and the shapes world's rule rewards, as train does.
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "rewards/registry.h"
#include "world/shapes_rewards.h"
#include "world/shapes_world.h"

namespace dancegrpo {
namespace {

// A scripted reward model that reads its prompts, saved once for the torchscript= factory.
std::string ScriptedModel() {
  static const std::string path = [] {
    const std::string p = std::string(std::getenv("TEST_TMPDIR")) + "/conformance_reward.pt";
    torch::jit::Module m("ConformanceReward");
    m.define(R"(
def forward(self, videos, prompts: List[str]):
    lengths = [float(len(p)) for p in prompts]
    return torch.tensor(lengths) * 0.01 + videos.flatten(1).mean(1)
)");
    m.save(p);
    return p;
  }();
  return path;
}

std::string SpecOf(const rewards::RewardInfo& info) {
  if (!info.takes_argument) return info.name;
  EXPECT_EQ(info.name, "torchscript") << "a new reward with an argument: teach this test its argument";
  return info.name + "=" + ScriptedModel();
}

struct Batch {
  torch::Tensor clips;
  std::vector<rewards::Prompt> prompts;
};

// Clips of the shapes world with their own prompts, and a few noisy ones.
Batch MakeBatch() {
  Batch b;
  std::vector<torch::Tensor> clips;
  const auto specs = world::AllSpecs();
  for (int i = 0; i < 5; ++i) {
    const auto& s = specs[(i * 37) % specs.size()];
    auto clip = world::Render(s, i);
    if (i % 2) clip = (clip + 0.3 * torch::randn(clip.sizes(), torch::TensorOptions().dtype(clip.scalar_type())))
                          .clamp(-1, 1);
    clips.push_back(clip);
    b.prompts.push_back({i, world::PromptText(s)});
  }
  b.clips = torch::stack(clips);
  return b;
}

TEST(RewardConformance, EveryRegisteredRewardKeepsTheContract) {
  torch::manual_seed(3);
  const auto registered = rewards::RegisteredRewards();
  std::set<std::string> names;
  for (const auto& info : registered) names.insert(info.name);
  // What this binary links: the generic rewards and the shapes world's.
  for (const char* n : {"motion_quality", "jpeg", "torchscript"}) EXPECT_TRUE(names.count(n)) << n;
  for (const auto& n : world::ShapesRuleRewards()) EXPECT_TRUE(names.count(n)) << n;

  const Batch batch = MakeBatch();
  const int64_t n = batch.clips.size(0);
  for (const auto& info : registered) {
    SCOPED_TRACE(info.name);
    EXPECT_FALSE(info.help.empty());
    auto made = rewards::MakeReward(SpecOf(info));
    ASSERT_TRUE(made.ok()) << made.status();
    const std::vector<rewards::WeightedReward> one = {{*made, 1.0}};
    auto scores = rewards::ScoreAll(one, batch.clips, batch.prompts);
    ASSERT_TRUE(scores.ok()) << scores.status();
    ASSERT_EQ(static_cast<int64_t>((*scores)[0].size()), n);
    for (double s : (*scores)[0]) EXPECT_TRUE(std::isfinite(s));
    // Each score is its own clip's and prompt's: reversing the batch reverses the scores.
    auto reversed = batch.clips.flip({0}).contiguous();
    std::vector<rewards::Prompt> reversed_prompts(batch.prompts.rbegin(), batch.prompts.rend());
    auto back = rewards::ScoreAll(one, reversed, reversed_prompts);
    ASSERT_TRUE(back.ok()) << back.status();
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR((*back)[0][n - 1 - i], (*scores)[0][i], 1e-9) << "clip " << i;
    // Bad input: more clips than prompts, clips that are not [B, C, F, H, W].
    auto fewer = std::vector<rewards::Prompt>(batch.prompts.begin(), batch.prompts.begin() + 2);
    auto mismatch = rewards::ScoreAll(one, batch.clips, fewer);
    ASSERT_FALSE(mismatch.ok());
    EXPECT_NE(mismatch.status().message().find("2 prompts"), std::string::npos) << mismatch.status();
    EXPECT_FALSE(rewards::ScoreAll(one, batch.clips.flatten(0, 1), batch.prompts).ok());
  }
}

TEST(RewardConformance, TheRegistryRefusesUnknownNamesAndMissingArguments) {
  auto unknown = rewards::MakeReward("aesthetics");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown reward 'aesthetics'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("alignment"), std::string::npos) << "the message lists the rewards";
  EXPECT_FALSE(rewards::MakeReward("torchscript").ok());
  EXPECT_FALSE(rewards::MakeReward("torchscript=/nonexistent/model.pt").ok());
}

TEST(RewardConformanceDeathTest, RegisteringANameTwiceIsABrokenInvariant) {
  EXPECT_DEATH(rewards::RegisterReward({"jpeg", "again", false}, nullptr), "registered twice");
}

}  // namespace
}  // namespace dancegrpo
