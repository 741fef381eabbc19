// The shapes world's rule rewards (and the generic ones on its clips), through the registry.
#include "world/shapes_rewards.h"

#include <torch/torch.h>

#include <set>

#include "gtest/gtest.h"
#include "rewards/registry.h"
#include "world/shapes_world.h"

namespace dancegrpo::world {
namespace {

namespace w = world;
using rewards::MakeReward;

double Score(const std::string& reward, const torch::Tensor& clip, const std::string& prompt) {
  auto r = MakeReward(reward);
  EXPECT_TRUE(r.ok()) << r.status();
  auto s = (*r)->Score(clip.unsqueeze(0), {{0, prompt}});
  EXPECT_TRUE(s.ok()) << s.status();
  return (*s)[0];
}

TEST(ShapesWorld, PromptsRoundTripAndTheSplitCoversEveryAttribute) {
  const auto all = w::AllSpecs();
  EXPECT_EQ(all.size(), 128u);
  std::set<int64_t> ids;
  for (const auto& s : all) {
    auto parsed = w::ParsePrompt(w::PromptText(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->id(), s.id()) << w::PromptText(s);
    ids.insert(s.id());
  }
  EXPECT_EQ(ids.size(), 128u);
  const auto held = w::HeldOutSpecs(), train = w::TrainSpecs();
  EXPECT_EQ(held.size() + train.size(), 128u);
  EXPECT_GT(held.size(), 15u);
  EXPECT_LT(held.size(), 40u);
  std::set<int> colours, motions;
  for (const auto& s : train) colours.insert(s.colour), motions.insert(static_cast<int>(s.motion));
  EXPECT_EQ(colours.size(), 4u);
  EXPECT_EQ(motions.size(), 4u);
  auto bad = w::ParsePrompt("three purple cubes moving sideways on a plaid background");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown count 'three'"), std::string::npos);
}

TEST(RuleRewards, GroundTruthClipsScorePerfectly) {
  for (const auto& s : w::AllSpecs()) {
    const auto clip = w::Render(s, 7);
    ASSERT_EQ(clip.sizes(), torch::IntArrayRef(w::ClipShape()));
    const std::string p = w::PromptText(s);
    EXPECT_DOUBLE_EQ(Score("colour", clip, p), 1.0) << p;
    EXPECT_DOUBLE_EQ(Score("count", clip, p), 1.0) << p;
    EXPECT_DOUBLE_EQ(Score("motion", clip, p), 1.0) << p;
    EXPECT_DOUBLE_EQ(Score("alignment", clip, p), 1.0) << p;
  }
}

TEST(RuleRewards, EachRuleCatchesItsMistake) {
  w::ClipSpec s{0, /*colour=*/0, /*count=*/1, w::Motion::kRight, 0};
  const auto clip = w::Render(s, 3);
  auto wrong = s;
  wrong.colour = 2;
  EXPECT_DOUBLE_EQ(Score("colour", clip, w::PromptText(wrong)), 0.0);
  wrong = s;
  wrong.count = 2;
  EXPECT_DOUBLE_EQ(Score("count", clip, w::PromptText(wrong)), 0.0);
  // Two objects moving right sit in the top and bottom halves; erasing the bottom half of the
  // last two frames leaves half of the frames with the asked count.
  auto two = s;
  two.count = 2;
  auto partly_two = w::Render(two, 5);
  partly_two.narrow(1, 2, 2).narrow(2, 5, 5).fill_(-1.0);  // black background
  EXPECT_DOUBLE_EQ(Score("count", w::Render(two, 5), w::PromptText(two)), 1.0);
  EXPECT_DOUBLE_EQ(Score("count", partly_two, w::PromptText(two)), 0.5);
  wrong = s;
  wrong.motion = w::Motion::kLeft;
  EXPECT_DOUBLE_EQ(Score("motion", clip, w::PromptText(wrong)), 0.0);
  wrong.motion = w::Motion::kUp;  // across the asked direction: no progress
  EXPECT_DOUBLE_EQ(Score("motion", clip, w::PromptText(wrong)), 0.0);
  // A still clip earns no motion credit; one that covers a third of the travel earns a third.
  auto still = clip.clone();
  for (int f = 1; f < w::kFrames; ++f) still.select(1, f).copy_(clip.select(1, 0));
  EXPECT_DOUBLE_EQ(Score("motion", still, w::PromptText(s)), 0.0);
  auto slow = still.clone();
  slow.select(1, w::kFrames - 1).copy_(clip.select(1, 1));
  EXPECT_NEAR(Score("motion", slow, w::PromptText(s)), 1.0 / 3, 1e-12);
  // An empty clip (background only) has no colour, wrong count, no motion.
  auto empty = w::Render(s, 3);
  empty.copy_(torch::full_like(empty, -1.0));
  EXPECT_DOUBLE_EQ(Score("alignment", empty, w::PromptText(s)), 0.0);
}

TEST(GenericRewards, MotionQualityAndJpegPreferCleanClips) {
  w::ClipSpec s{1, 3, 2, w::Motion::kDown, 1};
  const auto clean = w::Render(s, 5);
  torch::manual_seed(0);
  const auto noise = torch::rand_like(clean) * 2 - 1;
  auto still = clean.clone();
  for (int f = 1; f < w::kFrames; ++f) still.select(1, f).copy_(still.select(1, 0));
  EXPECT_DOUBLE_EQ(Score("motion_quality", still, w::PromptText(s)), 1.0);
  EXPECT_GT(Score("motion_quality", clean, w::PromptText(s)), Score("motion_quality", noise, w::PromptText(s)) + 0.2);
  const double jc = Score("jpeg", clean, w::PromptText(s)), jn = Score("jpeg", noise, w::PromptText(s));
  EXPECT_GT(jc, 0.8);
  EXPECT_LT(jn, jc - 0.1);
}

TEST(RuleRewards, AreRegisteredAndRefuseOtherWorldsPrompts) {
  auto names = ShapesRuleRewards();
  std::set<std::string> registered;
  for (const auto& r : rewards::RegisteredRewards()) registered.insert(r.name);
  for (const auto& n : names) EXPECT_TRUE(registered.count(n)) << n << " is not registered";
  auto r = MakeReward("alignment");
  ASSERT_TRUE(r.ok()) << r.status();
  auto s = (*r)->Score(w::Render(w::AllSpecs()[0], 1).unsqueeze(0), {{0, "a photo of a cat"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("a photo of a cat"), std::string::npos) << s.status();
  EXPECT_FALSE(MakeReward("alignment=x").ok()) << "a rule reward takes no argument";
}

}  // namespace
}  // namespace dancegrpo::world
