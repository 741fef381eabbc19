// --lr_schedule=cosine: every iteration's optimizer steps use ScheduledLr's rate (a run whose
// last iteration is resumed with that rate as a constant --lr ends on the same bits), the rate
// is in the metrics, and a run resumed under the schedule equals the uninterrupted one.
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "tests/tiny_dit_trainer.h"

namespace dancegrpo {
namespace {

TrainerConfig Cosine() {
  auto c = testing::TinyDitConfig();
  c.seed = 5;
  c.iterations = 3;
  c.lr_schedule = "cosine";
  c.lr_final_fraction = 0.25;
  return c;
}

std::unique_ptr<Trainer> Make(const TrainerConfig& c) {
  auto t = testing::MakeTinyDitTrainer(c);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::string Dir(const std::string& name) {
  const std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  EXPECT_EQ(std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str()), 0);
  return d;
}

void ExpectSameWeights(Trainer& a, Trainer& b, const std::string& what) {
  auto theirs = b.policy().named_parameters();
  for (const auto& p : a.policy().named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), theirs[p.key()])) << p.key() << ": " << what;
}

TEST(LrSchedule, EveryIterationStepsWithTheScheduledRate) {
  const auto c = Cosine();
  auto scheduled = Make(c);
  ASSERT_TRUE(scheduled);
  std::vector<double> rates;
  for (int i = 0; i < 3; ++i) {
    auto m = scheduled->Step();
    ASSERT_TRUE(m.ok()) << m.status();
    rates.push_back(m->lr);
  }
  EXPECT_DOUBLE_EQ(rates[0], c.optimizer.lr);
  EXPECT_NEAR(rates[1], c.optimizer.lr * (0.25 + 0.75 * 0.5), 1e-15);
  EXPECT_NEAR(rates[2], c.optimizer.lr * 0.25, 1e-15);

  // The same first two iterations at constant rates, checkpointed, and the last iteration
  // resumed with --lr at the schedule's last rate: the same bits, so the optimizer used it.
  auto constant = c;
  constant.lr_schedule = "constant";
  const std::string dir = Dir("lr_schedule");
  auto first = Make(c);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->Step().ok());
  ASSERT_TRUE(first->Step().ok());
  auto path = SaveCheckpoint(*first, dir, 0);
  ASSERT_TRUE(path.ok()) << path.status();
  auto last = constant;
  last.optimizer.lr = rates[2];
  auto resumed = Make(last);
  ASSERT_TRUE(resumed);
  ASSERT_TRUE(LoadCheckpoint(*resumed, *path).ok());
  auto m = resumed->Step();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->lr, rates[2]);
  ExpectSameWeights(*resumed, *scheduled, "the last iteration at the scheduled rate");

  // Resumed under the schedule itself: the uninterrupted run's bits.
  auto again = Make(c);
  ASSERT_TRUE(again);
  ASSERT_TRUE(LoadCheckpoint(*again, *path).ok());
  ASSERT_TRUE(again->Step().ok());
  ExpectSameWeights(*again, *scheduled, "resumed under the cosine schedule");

  // And the constant rate is not the schedule's: the first run's last step differs.
  auto plain = Make(constant);
  ASSERT_TRUE(plain);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(plain->Step().ok());
  bool differs = false;
  auto theirs = scheduled->policy().named_parameters();
  for (const auto& p : plain->policy().named_parameters()) differs |= !torch::equal(p.value(), theirs[p.key()]);
  EXPECT_TRUE(differs) << "a cosine schedule that changes nothing";
}

}  // namespace
}  // namespace dancegrpo
