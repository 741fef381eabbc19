// Rollout and update: shared noise, recorded log-probs, ratio == 1 on-policy (bitwise),
// timestep subsets, optimizer mechanics (AdamW, EMA), CFG and KL.
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "dancegrpo/rollout.h"
#include "dancegrpo/schedule.h"
#include "world/toy_world.h"
#include "dancegrpo/update.h"
#include "hpc/comm/communicator.h"
#include "gtest/gtest.h"
#include "models/mlp_velocity.h"

namespace dancegrpo {
namespace {

const std::vector<int64_t> kShape = {2, 1, 2, 2};
constexpr double kLossScale = 1.0 / 12;

std::shared_ptr<models::MlpVelocity> RandomPolicy(int seed) {
  torch::manual_seed(seed);
  models::MlpVelocityConfig c;
  c.latent_shape = kShape;
  c.condition_dim = 3;
  auto m = std::make_shared<models::MlpVelocity>(c);
  // The zero-initialised output layer would make v == 0 and every check trivial.
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.3);
  return m;
}

struct World {
  std::shared_ptr<models::MlpVelocity> policy = RandomPolicy(1);
  toy::OneHotPromptEncoder encoder{3};
  std::vector<double> sigmas = *SigmaSchedule(6, 3.0);
  RolloutConfig rollout;
  int group;
  std::shared_ptr<hpc::Communicator> local = std::make_shared<hpc::LocalCommunicator>();

  World(int group_size, int micro_batch) : group(group_size) {
    rollout.seed = 42;
    rollout.micro_batch = micro_batch;
    rollout.latent_shape = kShape;
  }
  Trajectories Run(int prompts, int64_t iteration = 0) {
    std::vector<SampleId> samples;
    std::vector<std::string> texts;
    for (int p = 0; p < prompts; ++p) {
      for (int g = 0; g < group; ++g) {
        samples.push_back({p, g});
        texts.push_back("target " + std::to_string(p % 3));
      }
    }
    return Rollout(*policy, rollout, sigmas, iteration, samples, *encoder.Encode(texts), *encoder.Encode({""}));
  }
  std::unique_ptr<hpc::ShardedAdamW> Optimizer(const OptimizerConfig& c = {}) {
    return *hpc::ShardedAdamW::Create(policy->parameters(), local, c);
  }
  // `steps` optimizer steps per update.
  UpdateConfig Update(int steps) const {
    UpdateConfig u;
    u.seed = rollout.seed;
    u.optimizer_steps = steps;
    u.micro_batch = rollout.micro_batch;
    u.sde = rollout.sde;
    u.cfg_scale = rollout.cfg_scale;
    return u;
  }
};

std::vector<double> AlternatingAdvantages(int64_t n) {
  std::vector<double> a(n);
  for (int64_t i = 0; i < n; ++i) a[i] = (i % 2 ? 1.0 : -0.5) * (1 + i % 3);
  return a;
}

std::vector<int64_t> All(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST(Rollout, SharedNoiseWithinGroupOnly) {
  World s(/*group=*/4, 0);
  auto traj = s.Run(3);
  ASSERT_EQ(traj.num_samples(), 12);
  auto x0 = traj.latents.select(1, 0);
  for (int p = 0; p < 3; ++p)
    for (int g = 1; g < 4; ++g) EXPECT_TRUE(torch::equal(x0[p * 4 + g], x0[p * 4])) << p << "," << g;
  EXPECT_FALSE(torch::equal(x0[0], x0[4]));
  EXPECT_FALSE(torch::equal(x0[4], x0[8]));
  // Members differ through the SDE noise.
  EXPECT_FALSE(torch::equal(traj.latents[0][1], traj.latents[1][1]));

  s.rollout.shared_noise = false;
  auto indep = s.Run(3);
  EXPECT_FALSE(torch::equal(indep.latents[0][0], indep.latents[1][0]));
}

TEST(Rollout, NoiseDoesNotDependOnMicroBatching) {
  World whole(3, 0), chunked(3, 2);
  auto a = whole.Run(2), b = chunked.Run(2);
  EXPECT_TRUE(torch::equal(a.latents.select(1, 0), b.latents.select(1, 0)));
  // Later latents agree to fp32 rounding (batch shapes differ, so bits may differ).
  EXPECT_TRUE(torch::allclose(a.latents, b.latents, 1e-5, 1e-5));
}

TEST(Rollout, RecordedLogProbsAreTheGaussianDensityOfTheStoredStep) {
  World s(2, 0);
  auto traj = s.Run(2);
  ASSERT_EQ(traj.log_probs.sizes(), (torch::IntArrayRef{4, 6}));
  EXPECT_TRUE(torch::isfinite(traj.log_probs).all().item<bool>());
  // Samples are drawn from the policy, so x_{t+1} - mean is std * N(0,1): the per-sample
  // log-prob is -log(std) - log(sqrt(2 pi)) - mean(z^2)/2, within a few sigma of the peak.
  for (int i = 0; i < 6; ++i) {
    const double std = 0.3 * std::sqrt(s.sigmas[i] - s.sigmas[i + 1]);
    const double peak = -std::log(std) - 0.5 * std::log(2 * M_PI);
    for (int n = 0; n < 4; ++n) {
      const double lp = traj.log_probs[n][i].item<double>();
      EXPECT_LT(lp, peak);
      EXPECT_GT(lp, peak - 4.0);  // mean of 8 z^2/2 values; 4.0 is far in the tail
    }
  }
}

class RatioIsOne : public ::testing::TestWithParam<int> {};

TEST_P(RatioIsOne, BitwiseOnFirstUpdate) {
  const int batch = GetParam();
  // `batch` samples, evaluated as one micro-batch in rollout and update.
  const int group = batch >= 4 ? 4 : 1;
  World s(group, batch);
  s.rollout.shared_noise = true;
  auto traj = s.Run(batch / group);
  ASSERT_EQ(traj.num_samples(), batch);
  OptimizerConfig oc;
  oc.lr = 1e-3;
  auto opt = s.Optimizer(oc);
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, s.Update(1), traj, AlternatingAdvantages(batch), All(batch), kLossScale);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->trained_pairs, batch * 3);  // floor(5 * 0.6) = 3 steps per sample
  EXPECT_EQ(stats->optimizer_steps, 1);
  EXPECT_EQ(stats->ratio_min, 1.0);
  EXPECT_EQ(stats->ratio_max, 1.0);
  EXPECT_EQ(stats->clip_fraction, 0.0);
  EXPECT_EQ(stats->approx_kl, 0.0);
}

INSTANTIATE_TEST_SUITE_P(BatchSizes, RatioIsOne, ::testing::Values(1, 4, 12));

TEST(Update, RatioIsOneWithSeveralMicroBatchesAndCfg) {
  World s(4, 4);
  s.rollout.cfg_scale = 3.0;
  auto traj = s.Run(3);
  auto opt = s.Optimizer();
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, s.Update(1), traj, AlternatingAdvantages(12), All(12), kLossScale);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->ratio_min, 1.0);
  EXPECT_EQ(stats->ratio_max, 1.0);
}

TEST(Update, RatioMovesAfterAnOptimizerStep) {
  // GA = 4 of 12 samples: the second and third micro-batches see an updated policy.
  World s(4, 4);
  auto traj = s.Run(3);
  OptimizerConfig oc;
  oc.lr = 1e-2;
  auto opt = s.Optimizer(oc);
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, s.Update(3), traj, AlternatingAdvantages(12), All(12), kLossScale);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->optimizer_steps, 3);
  EXPECT_TRUE(stats->ratio_min < 1.0 || stats->ratio_max > 1.0);
  EXPECT_GT(stats->clip_fraction, 0.0);
}

TEST(Update, ZeroAdvantagesLeaveOnlyWeightDecay) {
  World s(2, 0);
  auto traj = s.Run(2);
  OptimizerConfig oc;
  oc.weight_decay = 0.0;
  auto before = s.policy->parameters()[0].detach().clone();
  auto opt = s.Optimizer(oc);
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, s.Update(1), traj, std::vector<double>(4, 0.0), All(4), kLossScale);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->grad_norm, 0.0);
  EXPECT_TRUE(torch::equal(before, s.policy->parameters()[0]));
}

TEST(Update, TrainedTimestepsAreDistinctSubsetsOfTrainableSteps) {
  auto count = TrainedStepCount(16, 0.6);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 9);  // floor(15 * 0.6)
  std::set<std::vector<int64_t>> seen;
  for (int member = 0; member < 8; ++member) {
    auto t = TrainedTimesteps(7, 3, 1, member, 16, 9);
    ASSERT_EQ(t.size(), 9u);
    std::set<int64_t> unique(t.begin(), t.end());
    EXPECT_EQ(unique.size(), 9u);
    EXPECT_GE(*unique.begin(), 0);
    EXPECT_LE(*unique.rbegin(), 14) << "the last step (15) is never trained";
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 1u) << "samples must get different subsets";
  EXPECT_EQ(TrainedTimesteps(7, 3, 1, 0, 16, 9), TrainedTimesteps(7, 3, 1, 0, 16, 9));
  EXPECT_FALSE(TrainedStepCount(1, 0.6).ok());
  EXPECT_FALSE(TrainedStepCount(2, 0.5).ok());
  EXPECT_FALSE(TrainedStepCount(16, 1.5).ok());
}

TEST(Rollout, SdeWindowIsTheOnlySourceOfDifferenceWithinAGroup) {
  // T = 6, window = steps 2 and 3: steps 0, 1, 4, 5 are ODE steps.
  World s(/*group=*/3, 0);
  s.rollout.sde.window = {2, 2};
  auto traj = s.Run(2);
  for (int p = 0; p < 2; ++p) {
    for (int g = 1; g < 3; ++g) {
      const int a = p * 3, b = p * 3 + g;
      // Shared x_0 and deterministic steps 0, 1: the same up to x_2, to the rounding of a
      // batched GEMM (BLAS kernels may round rows at other tile positions differently, e.g.
      // OpenBLAS's AVX2 kernels); the window's noise then makes them differ by far more.
      EXPECT_TRUE(torch::equal(traj.latents[a][0], traj.latents[b][0])) << "shared initial noise";
      double before = 0;
      for (int i = 1; i <= 2; ++i)
        before = std::max(before, (traj.latents[a][i] - traj.latents[b][i]).abs().max().item<double>());
      EXPECT_LE(before, 1e-5 * traj.latents[a][2].abs().max().item<double>()) << "the ODE steps add no difference";
      const double after = (traj.latents[a][3] - traj.latents[b][3]).abs().max().item<double>();
      EXPECT_GT(after, 1e-2) << "the window's noise differs";
      EXPECT_GT(after, 1e3 * before) << "the window is the source of the difference";
    }
  }
  // ODE steps record log-prob 0 and are x + (sigma_next - sigma) v, bit for bit (same batch shape).
  torch::NoGradGuard no_grad;
  const auto cond = traj.conditions;
  for (int i : {0, 1, 4, 5}) {
    EXPECT_EQ(traj.log_probs.select(1, i).abs().max().item<double>(), 0.0) << i;
    auto x = traj.latents.select(1, i);
    auto sigma = torch::full({6}, s.sigmas[i], torch::kFloat32);
    auto sigma_next = torch::full({6}, s.sigmas[i + 1], torch::kFloat32);
    auto v = s.policy->Velocity(x, sigma, cond);
    EXPECT_TRUE(torch::equal(traj.latents.select(1, i + 1), OdeStep(x, v, sigma, sigma_next))) << i;
  }
  for (int i : {2, 3}) EXPECT_TRUE((traj.log_probs.select(1, i) != 0).all().item<bool>()) << i;
}

// One update over every trainable step of 8 samples; the rollout's own trajectories, so the
// ratio must be exactly 1 on each trained (sample, step) pair.
void ExpectOnPolicyUpdate(World& s, const Trajectories& traj, int64_t steps_per_sample) {
  auto opt = s.Optimizer();
  UpdateConfig u = s.Update(1);
  u.timestep_fraction = 1.0;
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, u, traj, AlternatingAdvantages(8), All(8), kLossScale);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->trained_pairs, 8 * steps_per_sample);
  EXPECT_EQ(stats->ratio_min, 1.0) << "the update trains the steps the rollout drew";
  EXPECT_EQ(stats->ratio_max, 1.0);
}

TEST(Update, SdeWindowTrainsOnlyItsStepsAndStaysOnPolicy) {
  World s(4, 4);
  s.rollout.sde.window = {1, 3};  // steps 1..3 of T = 6
  ExpectOnPolicyUpdate(s, s.Run(2), 3);
  for (int member = 0; member < 4; ++member) {
    auto t = TrainedTimesteps(42, 0, 0, member, 6, 3, {1, 3});
    EXPECT_EQ(std::set<int64_t>(t.begin(), t.end()), (std::set<int64_t>{1, 2, 3}));
  }
}

TEST(Rollout, RandomSdeWindowIsKeyedByIterationAndTrainedWhereItLanded) {
  const SdeWindow random{0, 2, true};
  std::set<int> begins;
  for (int64_t it = 0; it < 40; ++it) {
    const auto w = WindowForIteration(random, 42, it, 6);
    EXPECT_FALSE(w.random);
    EXPECT_EQ(w.size, 2);
    EXPECT_GE(w.begin, 0);
    EXPECT_LE(w.begin + w.size, 5) << "never the last step";
    EXPECT_EQ(w.begin, WindowForIteration(random, 42, it, 6).begin) << "same key, same window";
    begins.insert(w.begin);
  }
  EXPECT_EQ(begins, (std::set<int>{0, 1, 2, 3})) << "every position is drawn over 40 iterations";

  World s(4, 4);
  s.rollout.sde.window = random;
  for (int64_t it : {0, 1, 2, 3}) {
    auto traj = s.Run(2, it);
    const auto w = WindowForIteration(random, s.rollout.seed, it, 6);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ((traj.log_probs.select(1, i) != 0).all().item<bool>(), w.Contains(i))
          << "iteration " << it << " step " << i;
    }
    ExpectOnPolicyUpdate(s, traj, 2);
  }
  EXPECT_EQ(*TrainedStepCount(6, 1.0, random), 2);
  EXPECT_FALSE(TrainedStepCount(6, 1.0, SdeWindow{0, 6, true}).ok()) << "larger than the trainable steps";
  EXPECT_FALSE(TrainedStepCount(6, 1.0, SdeWindow{0, 0, true}).ok()) << "a random window needs a size";
  // A begin that would be ignored is an error, not a silent default.
  auto ignored = TrainedStepCount(6, 1.0, SdeWindow{2, 2, true});
  ASSERT_FALSE(ignored.ok());
  EXPECT_NE(ignored.status().message().find("leave the begin at 0"), std::string::npos) << ignored.status();
  ignored = TrainedStepCount(6, 1.0, SdeWindow{2, 0, false});
  ASSERT_FALSE(ignored.ok());
  EXPECT_NE(ignored.status().message().find("give a size too"), std::string::npos) << ignored.status();
}

TEST(Update, SdeWindowCountsAndErrors) {
  EXPECT_EQ(*TrainedStepCount(10, 1.0, {0, 3}), 3);
  EXPECT_EQ(*TrainedStepCount(10, 0.6, {2, 5}), 3);  // floor(5 * 0.6)
  EXPECT_EQ(*TrainedStepCount(10, 1.0, {}), 9);      // size 0: every step but the last
  EXPECT_EQ(TrainedTimesteps(7, 3, 1, 0, 10, 3, {}), TrainedTimesteps(7, 3, 1, 0, 10, 3))
      << "the default window keeps the old subsets";
  for (const SdeWindow bad : {SdeWindow{8, 2}, SdeWindow{-1, 2}, SdeWindow{0, 10}}) {
    auto count = TrainedStepCount(10, 1.0, bad);
    ASSERT_FALSE(count.ok()) << bad.begin << ":" << bad.size;
    EXPECT_NE(count.status().message().find("does not fit"), std::string::npos) << count.status();
  }
  auto none = TrainedStepCount(10, 0.3, {0, 2});  // floor(2 * 0.3) = 0
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("0 trained steps"), std::string::npos) << none.status();
}

TEST(Update, RejectsOptimizerStepsThatSplitAMicroBatch) {
  World s(2, 4);
  auto traj = s.Run(4);
  auto opt = s.Optimizer();
  auto stats = UpdatePolicy(*s.policy, nullptr, *opt, s.Update(4), traj, AlternatingAdvantages(8), All(8), kLossScale);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("multiple of micro_batch"), std::string::npos) << stats.status();
  EXPECT_EQ(opt->steps_taken(), 0);
}

TEST(Update, KlToAnIdenticalReferenceIsZeroAndGrowsAfterward) {
  World s(2, 0);
  auto reference = RandomPolicy(1);  // same init as s.policy
  auto traj = s.Run(2);
  OptimizerConfig oc;
  oc.lr = 1e-2;
  auto opt = s.Optimizer(oc);
  UpdateConfig u = s.Update(1);
  u.kl_beta = 0.1;
  auto first = UpdatePolicy(*s.policy, reference.get(), *opt, u, traj, AlternatingAdvantages(4), All(4), kLossScale);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->kl_to_reference, 0.0);
  auto second = UpdatePolicy(*s.policy, reference.get(), *opt, u, traj, AlternatingAdvantages(4), All(4), kLossScale);
  ASSERT_TRUE(second.ok());
  EXPECT_GT(second->kl_to_reference, 0.0);
  u.kl_beta = 0.1;
  EXPECT_FALSE(UpdatePolicy(*s.policy, nullptr, *opt, u, traj, AlternatingAdvantages(4), All(4), kLossScale).ok());
}

TEST(Optimizer, EmaFollowsClosedForm) {
  auto p = torch::tensor({1.0f, -2.0f}).requires_grad_(true);
  OptimizerConfig oc;
  oc.lr = 0.1;
  oc.weight_decay = 0.0;
  oc.ema = true;
  oc.ema_decay = 0.9;
  oc.max_grad_norm = 0;
  auto opt = *hpc::ShardedAdamW::Create({p}, std::make_shared<hpc::LocalCommunicator>(), oc);
  (p * torch::tensor({3.0f, -1.0f})).sum().backward();
  auto norm = opt->Step();
  ASSERT_TRUE(norm.ok());
  EXPECT_NEAR(*norm, std::sqrt(10.0), 1e-6);
  // First AdamW step moves each coordinate by lr * sign(grad) (bias-corrected m/sqrt(v)).
  EXPECT_NEAR(p[0].item<double>(), 0.9, 1e-6);
  EXPECT_NEAR(p[1].item<double>(), -1.9, 1e-6);
  auto ema = opt->GatherEma();
  ASSERT_TRUE(ema.ok());
  EXPECT_NEAR((*ema)[0][0].item<double>(), 0.9 * 1.0 + 0.1 * 0.9, 1e-6);
  EXPECT_NEAR((*ema)[0][1].item<double>(), 0.9 * -2.0 + 0.1 * -1.9, 1e-6);
}

TEST(PolicyStep, CfgCombinesConditionalAndUnconditional) {
  World s(1, 0);
  auto x = torch::randn({2, 2, 1, 2, 2});
  auto sigma = torch::tensor({0.7f, 0.7f}), sigma_next = torch::tensor({0.5f, 0.5f});
  auto cond = *s.encoder.Encode({"target 0", "target 2"});
  auto null = *s.encoder.Encode({""});
  auto noise = torch::zeros_like(x);
  auto guided = PolicyStep(*s.policy, SdeConfig{}, 4.0, x, sigma, sigma_next, cond, null, noise, {});
  torch::NoGradGuard no_grad;
  auto vc = s.policy->Velocity(x, sigma, cond);
  auto vu = s.policy->Velocity(x, sigma, null.Rows(torch::zeros({2}, torch::kLong)));
  auto manual = SdeStep(SdeConfig{}, x, vu + 4.0 * (vc - vu), sigma, sigma_next, noise, {});
  EXPECT_TRUE(torch::allclose(guided.mean, manual.mean, 1e-5, 1e-5));
}

}  // namespace
}  // namespace dancegrpo
