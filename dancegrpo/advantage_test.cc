#include "dancegrpo/advantage.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

TEST(Advantages, GroupNormalisedWithUnbiasedStd) {
  AdvantageConfig c;
  c.group_size = 3;
  auto a = ComputeAdvantages({{1, 2, 3, 10, 20, 30}}, c);
  ASSERT_TRUE(a.ok()) << a.status();
  // Group 1: mean 2, unbiased std 1. Group 2: mean 20, std 10.
  const double e1 = 1.0 / (1.0 + 1e-8), e2 = 10.0 / (10.0 + 1e-8);
  const std::vector<double> expected = {-e1, 0, e1, -e2, 0, e2};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ((*a)[i], expected[i]) << i;
}

TEST(Advantages, ZeroVarianceGroupGivesZeroNotNan) {
  AdvantageConfig c;
  c.group_size = 4;
  auto a = ComputeAdvantages({{0.5, 0.5, 0.5, 0.5}}, c);
  ASSERT_TRUE(a.ok());
  for (double v : *a) {
    EXPECT_FALSE(std::isnan(v));
    EXPECT_EQ(v, 0.0);
  }
}

TEST(Advantages, WeightedSumOverRewards) {
  AdvantageConfig c;
  c.group_size = 2;
  c.weights = {0.7, 1.4};
  // Reward 0: (0, 2): std sqrt(2), A = -+1/sqrt2 each. Reward 1: (3, 1): A = +-1/sqrt2.
  auto a = ComputeAdvantages({{0, 2}, {3, 1}}, c);
  ASSERT_TRUE(a.ok());
  const double u = 1.0 / (std::sqrt(2.0) + 1e-8);
  EXPECT_NEAR((*a)[0], 0.7 * -u + 1.4 * u, 1e-12);
  EXPECT_NEAR((*a)[1], 0.7 * u + 1.4 * -u, 1e-12);
}

TEST(Advantages, ClippedToAdvClipMax) {
  AdvantageConfig c;
  c.group_size = 30;
  std::vector<double> r(30, 0.0);
  r[7] = 1.0;
  auto a = ComputeAdvantages({r}, c);
  ASSERT_TRUE(a.ok());
  // mean 1/30, unbiased variance 1/30: the outlier's raw advantage (29/30)/sqrt(1/30) = 5.29.
  const double std = std::sqrt(1.0 / 30.0);
  EXPECT_GT((29.0 / 30.0) / std, 5.0);
  EXPECT_EQ((*a)[7], 5.0);
  EXPECT_NEAR((*a)[0], -(1.0 / 30.0) / (std + 1e-8), 1e-12);
  c.adv_clip_max = 0.1;
  auto b = ComputeAdvantages({r}, c);
  EXPECT_EQ((*b)[0], -0.1);
  EXPECT_EQ((*b)[7], 0.1);
}

TEST(Advantages, GlobalNormalisationUsesAllSamples) {
  AdvantageConfig c;
  c.group_size = 2;
  c.global_normalization = true;
  auto a = ComputeAdvantages({{1, 2, 3, 4}}, c);
  ASSERT_TRUE(a.ok());
  const double std = std::sqrt(5.0 / 3.0);  // unbiased std of 1..4
  EXPECT_NEAR((*a)[0], -1.5 / (std + 1e-8), 1e-12);
  EXPECT_NEAR((*a)[3], 1.5 / (std + 1e-8), 1e-12);
}

TEST(Advantages, PooledStdKeepsGroupMeansAndPoolsTheSpread) {
  AdvantageConfig c;
  c.group_size = 3;
  c.pooled_std = true;
  // Centred: (-1, 0, 1) and (-10, 0, 10); pooled std sqrt((2 + 200) / (6 - 2 groups)).
  auto a = ComputeAdvantages({{1, 2, 3, 10, 20, 30}}, c);
  ASSERT_TRUE(a.ok()) << a.status();
  const double pooled = std::sqrt(202.0 / 4.0) + 1e-8;
  const std::vector<double> expected = {-1 / pooled, 0, 1 / pooled, -10 / pooled, 0, 10 / pooled};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ((*a)[i], expected[i]) << i;
}

TEST(Advantages, PooledStdShrinksAGroupThatBarelyDiffers) {
  AdvantageConfig c;
  c.group_size = 2;
  const std::vector<std::vector<double>> r = {{0.5, 0.5001, 0.0, 1.0}};
  auto per_group = ComputeAdvantages(r, c);
  c.pooled_std = true;
  auto pooled = ComputeAdvantages(r, c);
  ASSERT_TRUE(per_group.ok() && pooled.ok());
  // Per group, a 1e-4 difference becomes the same +-1/sqrt2 as a difference of 1.
  EXPECT_NEAR((*per_group)[1], (*per_group)[3], 1e-3);
  // Pooled, it stays 1e-4 of the informative group's advantage.
  EXPECT_NEAR((*pooled)[1] / (*pooled)[3], 1e-4, 1e-9);
  EXPECT_GT((*pooled)[3], (*per_group)[3]);
  // One group: the pooled std is that group's std.
  auto one = ComputeAdvantages({{0.0, 1.0}}, c);
  c.pooled_std = false;
  auto one_per_group = ComputeAdvantages({{0.0, 1.0}}, c);
  EXPECT_EQ(*one, *one_per_group);
}

TEST(Advantages, BadInputsGiveClearErrors) {
  AdvantageConfig c;
  c.group_size = 2;
  auto nan = ComputeAdvantages({{1, std::numeric_limits<double>::quiet_NaN()}}, c);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("sample 1"), std::string::npos) << nan.status();
  auto uneven = ComputeAdvantages({{1, 2, 3}}, c);
  ASSERT_FALSE(uneven.ok());
  EXPECT_NE(uneven.status().message().find("groups of 2"), std::string::npos) << uneven.status();
  c.group_size = 1;
  auto single = ComputeAdvantages({{1, 2}}, c);
  ASSERT_FALSE(single.ok());
  EXPECT_NE(single.status().message().find("at least 2"), std::string::npos) << single.status();
  c.group_size = 2;
  c.weights = {1, 2, 3};
  auto weights = ComputeAdvantages({{1, 2}}, c);
  ASSERT_FALSE(weights.ok());
  EXPECT_NE(weights.status().message().find("one weight per reward"), std::string::npos);
}

TEST(BestOfN, KeepsTopAndBottomHalfPerGroup) {
  const std::vector<double> adv = {0.1, 3, -2, 0.5, 1, -1, /*group 2*/ 9, 8, 7, 6, 5, 4};
  auto kept = BestOfN(adv, 6, 4);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, (std::vector<int64_t>{1, 2, 4, 5, 6, 7, 10, 11}));
  EXPECT_FALSE(BestOfN(adv, 6, 3).ok());
  EXPECT_FALSE(BestOfN(adv, 6, 8).ok());
}

}  // namespace
}  // namespace dancegrpo
