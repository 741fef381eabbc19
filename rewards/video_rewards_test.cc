#include "rewards/video_rewards.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "gtest/gtest.h"
#include "rewards/registry.h"

namespace dancegrpo::rewards {
namespace {

TEST(TorchScriptReward, LoadsAScriptedModelWithAndWithoutPrompts) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  torch::jit::Module mean_model("MeanReward");
  mean_model.register_parameter("scale", torch::tensor({2.0f}), false);
  mean_model.define(R"(
def forward(self, videos):
    return videos.flatten(1).mean(1) * self.scale
)");
  mean_model.save(dir + "/mean.pt");
  torch::jit::Module prompt_model("PromptReward");
  prompt_model.define(R"(
def forward(self, videos, prompts: List[str]):
    lengths = [float(len(p)) for p in prompts]
    return torch.tensor(lengths) + videos.flatten(1).mean(1) * 0.0
)");
  prompt_model.save(dir + "/prompt.pt");

  auto videos = torch::stack({torch::full({3, 2, 4, 4}, 0.25f), torch::full({3, 2, 4, 4}, -0.5f)});
  auto mean = MakeReward("torchscript=" + dir + "/mean.pt");
  ASSERT_TRUE(mean.ok()) << mean.status();
  auto s = (*mean)->Score(videos, {{0, "a"}, {1, "bb"}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NEAR((*s)[0], 0.5, 1e-6);
  EXPECT_NEAR((*s)[1], -1.0, 1e-6);
  auto prompt = MakeReward("torchscript=" + dir + "/prompt.pt");
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  auto p = (*prompt)->Score(videos, {{0, "abc"}, {1, "hello"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, (std::vector<double>{3.0, 5.0}));
  auto missing = MakeReward("torchscript=" + dir + "/nope.pt");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.pt"), std::string::npos);
}

TEST(RewardSpec, ParsesWeightsAndRejectsUnknownNames) {
  auto spec = ParseRewardSpec("jpeg:1,motion_quality:0.3,jpeg");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->size(), 3u);
  EXPECT_EQ((*spec)[0].reward->name(), "jpeg");
  EXPECT_DOUBLE_EQ((*spec)[1].weight, 0.3);
  EXPECT_DOUBLE_EQ((*spec)[2].weight, 1.0);
  EXPECT_NE(ParseRewardSpec("beauty:2").status().message().find("unknown reward 'beauty'"), std::string::npos);
  EXPECT_FALSE(ParseRewardSpec("jpeg:x").ok());
  // The message lists what is registered; a reward that needs its argument says so.
  EXPECT_NE(ParseRewardSpec("beauty").status().message().find("torchscript=<path>"), std::string::npos);
  EXPECT_NE(ParseRewardSpec("torchscript").status().message().find("needs an argument"), std::string::npos);
  EXPECT_NE(ParseRewardSpec("jpeg=9").status().message().find("takes no argument"), std::string::npos);
  EXPECT_FALSE(ParseRewardSpec("").ok());
}

}  // namespace
}  // namespace dancegrpo::rewards
