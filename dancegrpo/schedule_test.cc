#include "dancegrpo/schedule.h"

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

TEST(SigmaSchedule, NoShiftIsLinspace) {
  auto s = SigmaSchedule(4, 1.0);
  ASSERT_TRUE(s.ok());
  const std::vector<double> expected = {1.0, 0.75, 0.5, 0.25, 0.0};
  ASSERT_EQ(s->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ((*s)[i], expected[i]) << i;
}

TEST(SigmaSchedule, ShiftThreeMatchesClosedForm) {
  // s t / (1 + (s-1) t) with s = 3 at t = 1, .75, .5, .25, 0: 1, 2.25/2.5, 1.5/2, .75/1.5, 0.
  auto s = SigmaSchedule(4, 3.0);
  ASSERT_TRUE(s.ok());
  const std::vector<double> expected = {1.0, 0.9, 0.75, 0.5, 0.0};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR((*s)[i], expected[i], 1e-15) << i;
}

TEST(SigmaSchedule, SixteenStepsShiftFiveIsMonotone) {
  auto s = SigmaSchedule(16, 5.0);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 17u);
  EXPECT_EQ(s->front(), 1.0);
  EXPECT_EQ(s->back(), 0.0);
  for (size_t i = 1; i < s->size(); ++i) EXPECT_LT((*s)[i], (*s)[i - 1]);
  // i = 8: t = 0.5, sigma = 2.5 / 3.
  EXPECT_NEAR((*s)[8], 2.5 / 3.0, 1e-15);
}

TEST(SigmaSchedule, RejectsBadArguments) {
  auto a = SigmaSchedule(0, 1.0);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("steps"), std::string::npos);
  auto b = SigmaSchedule(4, 0.0);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("shift"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo
