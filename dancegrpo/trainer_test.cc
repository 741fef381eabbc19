// The trainer end to end on the toy world: it learns, it unlearns with the advantage sign
// flipped, it is deterministic, and it refuses bad configs and bad rewards clearly.
#include "dancegrpo/trainer.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <numeric>

#include "world/toy_world.h"
#include "gtest/gtest.h"
#include "models/mlp_velocity.h"

namespace dancegrpo {
namespace {

const std::vector<int64_t> kShape = {4, 1, 2, 2};
constexpr int kTargets = 4;

// Negates another reward: optimising it flips the sign of every advantage.
class NegatedReward : public rewards::Reward {
 public:
  explicit NegatedReward(std::shared_ptr<rewards::Reward> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return "negated_" + inner_->name(); }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& v, const std::vector<rewards::Prompt>& p) override {
    auto s = inner_->Score(v, p);
    if (s.ok())
      for (double& x : *s) x = -x;
    return s;
  }

 private:
  std::shared_ptr<rewards::Reward> inner_;
};

// Returns NaN for one sample.
class NanReward : public rewards::Reward {
 public:
  std::string name() const override { return "broken"; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor&, const std::vector<rewards::Prompt>& p) override {
    std::vector<double> s(p.size(), 0.5);
    s[1] = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
};

TrainerConfig ToyConfig(int64_t iterations) {
  TrainerConfig c;
  c.seed = 1;
  c.iterations = iterations;
  c.prompts_per_iteration = 4;
  c.group_size = 8;
  c.steps = 8;
  c.optimizer.lr = 3e-3;
  c.latent_shape = kShape;
  return c;
}

struct Run {
  std::unique_ptr<Trainer> trainer;
  std::vector<double> target_reward;  // per iteration, the un-negated target reward
};

Run Train(const TrainerConfig& c, bool flip_advantage) {
  torch::manual_seed(c.seed);
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto target = std::make_shared<toy::TargetRegionReward>(kTargets, kShape, c.seed);
  std::shared_ptr<rewards::Reward> reward = target;
  if (flip_advantage) reward = std::make_shared<NegatedReward>(target);
  auto t = Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr, {{reward, 1.0}},
                           toy::TargetPrompts(kTargets));
  EXPECT_TRUE(t.ok()) << t.status();
  Run run{*std::move(t), {}};
  auto status = run.trainer->Run([&](const IterationMetrics& m) {
    run.target_reward.push_back(flip_advantage ? -m.reward_mean[0] : m.reward_mean[0]);
  });
  EXPECT_TRUE(status.ok()) << status;
  return run;
}

double Mean(const std::vector<double>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + begin, v.begin() + end, 0.0) / (end - begin);
}

TEST(Trainer, LearnsToReachTheTarget) {
  auto run = Train(ToyConfig(400), /*flip_advantage=*/false);
  ASSERT_EQ(run.target_reward.size(), 400u);
  const double before = Mean(run.target_reward, 0, 20);
  const double after = Mean(run.target_reward, 380, 400);
  std::printf("target reward %.4f -> %.4f\n", before, after);
  EXPECT_GT(after, before + 0.25) << "GRPO must improve the reward clearly";
}

TEST(Trainer, FlippedAdvantageMakesItWorse) {
  auto run = Train(ToyConfig(400), /*flip_advantage=*/true);
  const double before = Mean(run.target_reward, 0, 20);
  const double after = Mean(run.target_reward, 380, 400);
  std::printf("target reward with flipped advantage %.4f -> %.4f\n", before, after);
  EXPECT_LT(after, 0.5 * before);
}

TEST(Trainer, SameSeedGivesBitIdenticalParameters) {
  auto a = Train(ToyConfig(5), false);
  auto b = Train(ToyConfig(5), false);
  auto pa = a.trainer->policy().parameters(), pb = b.trainer->policy().parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
  EXPECT_EQ(a.target_reward, b.target_reward);
  // And a different seed gives different parameters.
  auto c = ToyConfig(5);
  c.seed = 2;
  auto other = Train(c, false);
  EXPECT_FALSE(torch::equal(pa.back(), other.trainer->policy().parameters().back()));
}

TEST(Trainer, MetricsCoverRewardsRatioKlGradAndThroughput) {
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto t = Trainer::Create(ToyConfig(1), std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, kShape, 1), 1.0}},
                           toy::TargetPrompts(kTargets));
  ASSERT_TRUE(t.ok());
  auto m = (*t)->Step();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->samples, 32);
  ASSERT_EQ(m->reward_names, std::vector<std::string>{"target"});
  EXPECT_GT(m->reward_mean[0], 0.0);
  EXPECT_GT(m->reward_std[0], 0.0);
  EXPECT_EQ(m->update.mean_ratio, 1.0);
  EXPECT_EQ(m->update.clip_fraction, 0.0);
  EXPECT_EQ(m->update.trained_pairs, 32 * 4);  // floor(7 * 0.6) = 4
  EXPECT_GT(m->update.grad_norm, 0.0);
  EXPECT_GT(m->samples_per_second, 0.0);
  const std::string line = FormatProgress(*m, 10, 65.0);
  EXPECT_NE(line.find("iter 1/10"), std::string::npos) << line;
  EXPECT_NE(line.find("target"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 00:01:05"), std::string::npos) << line;
}

TEST(Trainer, PromptOrderIsAKeyedShufflePerEpoch) {
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto c = ToyConfig(1);
  c.prompts_per_iteration = 2;
  auto t = Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, kShape, 1), 1.0}},
                           toy::TargetPrompts(kTargets));
  ASSERT_TRUE(t.ok());
  // Iterations 0 and 1 cover epoch 0: every prompt exactly once.
  auto a = (*t)->PromptsFor(0), b = (*t)->PromptsFor(1);
  std::vector<int64_t> epoch = a;
  epoch.insert(epoch.end(), b.begin(), b.end());
  std::sort(epoch.begin(), epoch.end());
  EXPECT_EQ(epoch, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ((*t)->PromptsFor(0), a);
}

TEST(Trainer, RejectsBadConfigsWithClearErrors) {
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto make = [&](const TrainerConfig& c) {
    return Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, kShape, 1), 1.0}},
                           toy::TargetPrompts(kTargets));
  };
  auto c = ToyConfig(1);
  c.group_size = 1;
  EXPECT_NE(make(c).status().message().find("group_size"), std::string::npos);
  c = ToyConfig(1);
  c.steps = 1;
  EXPECT_NE(make(c).status().message().find("at least 2"), std::string::npos);
  c = ToyConfig(1);
  c.best_of_n = 3;
  EXPECT_NE(make(c).status().message().find("best_of_n"), std::string::npos);
  c = ToyConfig(1);
  c.kl_beta = 0.1;
  EXPECT_NE(make(c).status().message().find("reference"), std::string::npos);
  c = ToyConfig(1);
  c.sde.eta = 0;
  EXPECT_NE(make(c).status().message().find("eta > 0"), std::string::npos);
  c = ToyConfig(1);
  c.sde.kind = SdeKind::kFlowGrpo;
  c.sde.noise_level = -1;
  EXPECT_NE(make(c).status().message().find("noise_level > 0"), std::string::npos);
  c = ToyConfig(1);
  c.shift = 0;
  EXPECT_NE(make(c).status().message().find("shift = 0"), std::string::npos);
  c = ToyConfig(1);
  c.clip_range = std::nan("");
  EXPECT_NE(make(c).status().message().find("clip_range"), std::string::npos);
  c = ToyConfig(1);
  c.sde.window = {c.steps - 2, 2};  // runs into the last step, which is never trained
  EXPECT_NE(make(c).status().message().find("SDE window"), std::string::npos) << make(c).status();
  c = ToyConfig(1);
  c.grad_accum_samples = 2;  // 16 steps of 2 samples: micro_batch 4 does not fit, at start-up
  EXPECT_NE(make(c).status().message().find("set --micro_batch=2"), std::string::npos) << make(c).status();
  c.micro_batch = 2;
  EXPECT_TRUE(make(c).ok());
}

TEST(Trainer, LearnsWithAnSdeWindow) {
  // Only the first half of the steps are stochastic and trained: GRPO still climbs.
  auto c = ToyConfig(400);
  c.sde.window = {0, c.steps / 2};
  auto run = Train(c, /*flip_advantage=*/false);
  const double before = Mean(run.target_reward, 0, 20);
  const double after = Mean(run.target_reward, 380, 400);
  std::printf("target reward with an SDE window %.4f -> %.4f\n", before, after);
  EXPECT_GT(after, before + 0.25);
}

TEST(Trainer, NanRewardStopsTheIterationNamingRewardAndSample) {
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto t = Trainer::Create(ToyConfig(1), std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<NanReward>(), 1.0}}, toy::TargetPrompts(kTargets));
  ASSERT_TRUE(t.ok());
  auto before = (*t)->policy().parameters()[0].detach().clone();
  auto m = (*t)->Step();
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("'broken'"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("sample 1"), std::string::npos) << m.status();
  EXPECT_TRUE(torch::equal(before, (*t)->policy().parameters()[0])) << "no update on bad rewards";
}

TEST(Trainer, BestOfNEmaKlAndFlowGrpoOptionsRun) {
  auto c = ToyConfig(3);
  c.best_of_n = 4;
  c.optimizer.ema = true;
  c.kl_beta = 0.05;
  c.sde.kind = SdeKind::kFlowGrpo;
  c.cfg_scale = 2.0;
  c.micro_batch = 8;
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto t = Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), std::make_shared<models::MlpVelocity>(mc),
                           std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, kShape, 1), 1.0}},
                           toy::TargetPrompts(kTargets));
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<IterationMetrics> ms;
  ASSERT_TRUE((*t)->Run([&](const IterationMetrics& m) { ms.push_back(m); }).ok());
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_EQ(ms[0].update.trained_pairs, 4 * 4 * 4);  // best 4 of 8, 4 prompts, 4 steps
  EXPECT_EQ(ms[0].update.kl_to_reference, 0.0);
  EXPECT_GT(ms[2].update.kl_to_reference, 0.0);
  EXPECT_TRUE((*t)->optimizer().ema_shard().defined());
}

}  // namespace
}  // namespace dancegrpo
