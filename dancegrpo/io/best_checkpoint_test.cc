// --keep_best: the checkpoint after the window with the highest weighted training reward is
// best.h5, whatever rotation deletes; a resumed run rebuilds the same scores from
// metrics.jsonl; a best.h5 of another timeline, a run without periodic checkpoints and
// unreadable metrics lines are named.
#include "dancegrpo/io/best_checkpoint.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/io/run_report.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "models/mlp_velocity.h"
#include "world/toy_world.h"

namespace dancegrpo::io {
namespace {

const std::vector<int64_t> kShape = {4, 1, 2, 2};
const std::vector<std::pair<std::string, double>> kWeights = {{"a", 1.0}, {"b", 0.5}};

// The iterations' training rewards (a, b): weighted a + b / 2 is 0.1 0.4 | 1.0 0.9 | 0.5 0.6 |
// 0.95 0.95, so the windows of 2 before checkpoints 2, 4, 6, 8 score 0.25, 0.95, 0.55, 0.95.
const std::vector<std::pair<double, double>> kRewards = {{0.1, 0.0}, {0.3, 0.2}, {0.9, 0.2},  {0.7, 0.4},
                                                         {0.5, 0.0}, {0.6, 0.0}, {0.95, 0.0}, {0.9, 0.1}};

std::string Dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/best_" + name;
  EXPECT_EQ(std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str()), 0);
  return d;
}

std::unique_ptr<Trainer> Toy() {
  TrainerConfig c;
  c.seed = 5;
  c.iterations = 8;
  c.prompts_per_iteration = 2;
  c.group_size = 2;
  c.steps = 3;
  c.micro_batch = 4;
  c.latent_shape = kShape;
  torch::manual_seed(c.seed);
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = 4;
  mc.hidden = 16;
  auto t = Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(4), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(4, kShape, 1), 1.0}}, toy::TargetPrompts(4));
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

IterationMetrics Metrics(int64_t iteration, std::pair<double, double> r) {
  IterationMetrics m;
  m.iteration = iteration;
  m.reward_names = {"a", "b"};
  m.reward_mean = {r.first, r.second};
  m.reward_std = {0, 0};
  return m;
}

std::string Bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the toy trainer to `until`, saving a checkpoint every 2 iterations (the newest kept),
// with `best` shown kRewards and considering each checkpoint. Returns ckpt-000004.h5's bytes.
std::string Train(Trainer& t, BestCheckpoint& best, const std::string& dir, int64_t until,
                std::vector<std::string>* printed = nullptr,
                const std::vector<std::pair<double, double>>& rewards = kRewards) {
  std::string four;
  while (t.iteration() < until) {
    EXPECT_TRUE(t.Step().ok());
    best.Observe(Metrics(t.iteration() - 1, rewards[t.iteration() - 1]));
    if (t.iteration() % 2 != 0) continue;
    auto path = SaveCheckpoint(t, dir, /*keep_last=*/1);
    EXPECT_TRUE(path.ok()) << path.status();
    if (t.iteration() == 4) four = Bytes(*path);
    auto line = best.Consider(*path, t.iteration());
    EXPECT_TRUE(line.ok()) << line.status();
    if (printed && line.ok() && line->has_value()) printed->push_back(**line);
  }
  return four;
}

TEST(BestCheckpoint, KeepsTheCheckpointAfterTheBestWindowThroughRotation) {
  const std::string dir = Dir("rotation");
  auto t = Toy();
  auto best = BestCheckpoint::Open(dir, dir + "/metrics.jsonl", 2, kWeights, 0);
  ASSERT_TRUE(best.ok()) << best.status();
  std::vector<std::string> printed;
  const std::string four = Train(*t, **best, dir, 8, &printed);
  EXPECT_DOUBLE_EQ(*(*best)->Score(2), 0.25);
  EXPECT_DOUBLE_EQ(*(*best)->Score(4), 0.95);
  EXPECT_DOUBLE_EQ(*(*best)->Score(6), 0.55);
  EXPECT_DOUBLE_EQ(*(*best)->Score(8), 0.95);  // a tie keeps the earlier best
  ASSERT_EQ(printed.size(), 2u);              // checkpoints 2 and 4 were each the best when written
  EXPECT_NE(printed[1].find("before iteration 4 (mean weighted training reward 0.9500 over iterations 2-3)"),
            std::string::npos)
      << printed[1];
  EXPECT_EQ((*best)->best_iteration(), 4);
  // Rotation (keep 1) deleted ckpt-000004.h5; best.h5 is still that checkpoint, byte for byte.
  EXPECT_FALSE(std::ifstream(CheckpointPath(dir, 4)).good());
  EXPECT_EQ(*ReadCheckpointIteration((*best)->BestPath()), 4);
  EXPECT_EQ(Bytes((*best)->BestPath()), four);
  auto latest = LatestCheckpoint(dir);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, CheckpointPath(dir, 8));  // best.h5 is not a checkpoint to resume from
}

TEST(BestCheckpoint, AResumedRunScoresAsTheUninterruptedOneFromMetricsJsonl) {
  const std::string dir = Dir("resume");
  auto t = Toy();
  auto a = BestCheckpoint::Open(dir, dir + "/none.jsonl", 2, kWeights, 0);
  ASSERT_TRUE(a.ok());
  // Rewards with more digits than metrics.jsonl keeps (%.6g): the live scores use the stored
  // values, so the resumed run's are the same bits.
  auto digits = kRewards;
  for (size_t i = 0; i < digits.size(); ++i) digits[i].first += 3.14159265e-8 * static_cast<double>(i + 1);
  Train(*t, **a, dir, 6, nullptr, digits);
  {
    std::ofstream metrics(dir + "/metrics.jsonl");
    for (int64_t it = 0; it < 6; ++it) metrics << MetricsJson(Metrics(it, digits[it]), 0) << "\n";
    metrics << MetricsJson(Metrics(6, {50.0, 0.0}), 0) << "\n";  // after the resumed iteration: not read
  }
  auto b = BestCheckpoint::Open(dir, dir + "/metrics.jsonl", 2, kWeights, 6);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->notice(), "");
  EXPECT_EQ((*b)->best_iteration(), 4);
  for (int64_t it : {2, 4, 6}) EXPECT_EQ(*(*b)->Score(it), *(*a)->Score(it)) << it;
  EXPECT_EQ((*b)->Describe(), (*a)->Describe());
  // Iterations 6 and 7 score above 0.95: checkpoint 8 becomes the best.
  (*b)->Observe(Metrics(6, {1.0, 0.0}));
  (*b)->Observe(Metrics(7, {1.0, 0.2}));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(t->Step().ok());
  auto path = SaveCheckpoint(*t, dir, 1);
  ASSERT_TRUE(path.ok());
  auto line = (*b)->Consider(*path, 8);
  ASSERT_TRUE(line.ok() && line->has_value());
  EXPECT_EQ((*b)->best_iteration(), 8);
  EXPECT_EQ(*ReadCheckpointIteration((*b)->BestPath()), 8);
}

TEST(BestCheckpoint, ABestOfAnotherTimelineIsDroppedAndNamed) {
  // A run resumed from a checkpoint older than best.h5, and a fresh run in an old directory.
  for (const int64_t start : {2, 0}) {
    const std::string dir = Dir("timeline" + std::to_string(start));
    auto t = Toy();
    auto a = BestCheckpoint::Open(dir, dir + "/none.jsonl", 2, kWeights, 0);
    ASSERT_TRUE(a.ok());
    Train(*t, **a, dir, 6);
    ASSERT_EQ(*ReadCheckpointIteration((*a)->BestPath()), 4);
    auto b = BestCheckpoint::Open(dir, dir + "/none.jsonl", 2, kWeights, start);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*b)->best_iteration(), -1);
    EXPECT_NE((*b)->notice().find(absl::StrCat("(before iteration 4) is not of this run up to iteration ", start,
                                               "; dropped")),
              std::string::npos)
        << (*b)->notice();
    EXPECT_FALSE(std::ifstream((*b)->BestPath()).good());
  }
}

TEST(BestCheckpoint, UnreadableMetricsLinesAreNamedAndTheirWindowsNotScored) {
  const std::string dir = Dir("corrupt");
  {
    std::ofstream metrics(dir + "/metrics.jsonl");
    metrics << MetricsJson(Metrics(0, kRewards[0]), 0) << "\n"
            << "{\"iteration\": 1, \"rewa\n"  // a line cut short
            << MetricsJson(Metrics(2, kRewards[2]), 0) << "\n"
            << MetricsJson(Metrics(3, kRewards[3]), 0) << "\n";
  }
  auto b = BestCheckpoint::Open(dir, dir + "/metrics.jsonl", 2, kWeights, 4);
  ASSERT_TRUE(b.ok());
  EXPECT_NE((*b)->notice().find("1 line(s) of " + dir + "/metrics.jsonl are not metrics"), std::string::npos)
      << (*b)->notice();
  EXPECT_FALSE((*b)->Score(2).has_value());  // needs iteration 1
  EXPECT_DOUBLE_EQ(*(*b)->Score(4), 0.95);
  // A reward the run weighs but the line lacks: that iteration is not known either.
  auto other = BestCheckpoint::Open(dir, dir + "/metrics.jsonl", 2, {{"a", 1.0}, {"c", 1.0}}, 4);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE((*other)->Score(4).has_value());
}

TEST(BestCheckpoint, TheWindowNeedsPeriodicCheckpoints) {
  EXPECT_EQ(*BestWindow(0, 50), 50);
  EXPECT_EQ(*BestWindow(20, 50), 20);
  const auto none = BestWindow(0, 0);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("set --checkpoint_every=N"), std::string::npos) << none.status();
  const auto negative = BestWindow(-1, 50);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("--best_window=-1 is negative"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo::io
