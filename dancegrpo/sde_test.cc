// The SDE steps against closed forms evaluated independently in double precision.
#include "dancegrpo/sde.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))

// Two rows [2, 1, 1, 1, 3] of fixed values.
const std::vector<double> kX = {0.3, -1.2, 0.8, 1.5, 0.0, -0.4};
const std::vector<double> kV = {-0.7, 0.2, 1.1, 0.05, -1.3, 0.6};
const std::vector<double> kZ = {0.25, -0.5, 1.75, -1.0, 0.1, 0.6};

torch::Tensor Rows(const std::vector<double>& values) {
  return torch::tensor(values, torch::kFloat64).to(torch::kFloat32).reshape({2, 1, 1, 1, 3});
}

TEST(DanceGrpoSde, MeanStdLogProbMatchClosedForm) {
  SdeConfig config;
  config.eta = 0.3;
  const std::vector<double> sig = {0.9, 0.5}, sig_next = {0.75, 0.25};
  auto r = SdeStep(config, Rows(kX), Rows(kV), torch::tensor({0.9f, 0.5f}), torch::tensor({0.75f, 0.25f}),
                   Rows(kZ), torch::Tensor());
  for (int b = 0; b < 2; ++b) {
    const double s = static_cast<float>(sig[b]), sn = static_cast<float>(sig_next[b]);
    const double d = sn - s, eta = 0.3;
    // score = -(x - (1-s)(x - s v)) / s^2 = -(x + (1-s) v) / s, so
    // mean = x + d v + (eta^2 / 2) (x + (1-s) v) d / s.
    const double std = eta * std::sqrt(s - sn);
    double lp_sum = 0;
    for (int j = 0; j < 3; ++j) {
      const double x = static_cast<float>(kX[b * 3 + j]), v = static_cast<float>(kV[b * 3 + j]);
      const double z = static_cast<float>(kZ[b * 3 + j]);
      const double mean = x + d * v + 0.5 * eta * eta * (x + (1 - s) * v) * d / s;
      EXPECT_NEAR(r.mean[b][0][0][0][j].item<double>(), mean, 2e-6) << b << "," << j;
      EXPECT_NEAR(r.x0_hat[b][0][0][0][j].item<double>(), x - s * v, 2e-6);
      EXPECT_NEAR(r.next[b][0][0][0][j].item<double>(), mean + std * z, 2e-6);
      lp_sum += -0.5 * z * z - std::log(std) - kLogSqrt2Pi;
    }
    EXPECT_NEAR(r.std[b].item<double>(), std, 1e-6);
    EXPECT_NEAR(r.log_prob[b].item<double>(), lp_sum / 3, 2e-5) << b;
  }
}

TEST(FlowGrpoSde, MeanStdLogProbMatchClosedFormIncludingFirstStep) {
  SdeConfig config;
  config.kind = SdeKind::kFlowGrpo;
  config.noise_level = 0.7;
  config.sigma_1 = 0.9;
  // Row 0 is the first step (sigma == 1, so sigma' = sigma_1); row 1 an interior step.
  const std::vector<double> sig = {1.0, 0.6}, sig_next = {0.9, 0.4};
  auto r = SdeStep(config, Rows(kX), Rows(kV), torch::tensor({1.0f, 0.6f}), torch::tensor({0.9f, 0.4f}),
                   Rows(kZ), torch::Tensor());
  for (int b = 0; b < 2; ++b) {
    const double s = static_cast<float>(sig[b]), sn = static_cast<float>(sig_next[b]);
    const double d = sn - s;
    const double sp = (b == 0) ? static_cast<double>(static_cast<float>(0.9)) : s;
    const double std_t = 0.7 * std::sqrt(s / (1 - sp));
    const double scale = std_t * std::sqrt(-d);
    double lp_sum = 0;
    for (int j = 0; j < 3; ++j) {
      const double x = static_cast<float>(kX[b * 3 + j]), v = static_cast<float>(kV[b * 3 + j]);
      const double z = static_cast<float>(kZ[b * 3 + j]);
      const double mean =
          x * (1 + std_t * std_t / (2 * s) * d) + v * (1 + std_t * std_t * (1 - s) / (2 * s)) * d;
      EXPECT_NEAR(r.mean[b][0][0][0][j].item<double>(), mean, 1e-5 * (1 + std::abs(mean))) << b << "," << j;
      lp_sum += -0.5 * z * z - std::log(scale) - kLogSqrt2Pi;
    }
    EXPECT_NEAR(r.std[b].item<double>(), scale, 1e-5 * scale);
    EXPECT_NEAR(r.log_prob[b].item<double>(), lp_sum / 3, 2e-5) << b;
  }
}

TEST(Sde, TrainingPathReproducesRolloutLogProbBitwise) {
  SdeConfig config;
  auto x = Rows(kX), v = Rows(kV), z = Rows(kZ);
  auto s = torch::tensor({0.8f, 0.3f}), sn = torch::tensor({0.6f, 0.1f});
  auto rollout = SdeStep(config, x, v, s, sn, z, torch::Tensor());
  auto training = SdeStep(config, x, v, s, sn, torch::Tensor(), rollout.next);
  EXPECT_TRUE(torch::equal(rollout.log_prob, training.log_prob));
  EXPECT_TRUE(torch::equal(rollout.mean, training.mean));
}

TEST(Sde, LogProbOfMeanIsTheDensityPeak) {
  // x_next == mean: log p = -log(std) - log(sqrt(2 pi)), for every row.
  SdeConfig config;
  config.eta = 0.5;
  auto x = Rows(kX), v = Rows(kV);
  auto s = torch::tensor({0.8f, 0.3f}), sn = torch::tensor({0.6f, 0.1f});
  auto first = SdeStep(config, x, v, s, sn, torch::zeros_like(x), torch::Tensor());
  auto again = SdeStep(config, x, v, s, sn, torch::Tensor(), first.mean);
  for (int b = 0; b < 2; ++b) {
    const double std = 0.5 * std::sqrt(static_cast<double>(s[b].item<float>()) - sn[b].item<float>());
    EXPECT_NEAR(again.log_prob[b].item<double>(), -std::log(std) - kLogSqrt2Pi, 1e-5);
  }
}

TEST(Sde, GradientFlowsToVelocityOnly) {
  SdeConfig config;
  auto v = Rows(kV).requires_grad_(true);
  auto next = Rows(kX) + 0.1;
  auto r = SdeStep(config, Rows(kX), v, torch::tensor({0.8f, 0.3f}), torch::tensor({0.6f, 0.1f}),
                   torch::Tensor(), next.requires_grad_(true));
  r.log_prob.sum().backward();
  ASSERT_TRUE(v.grad().defined());
  EXPECT_GT(v.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(next.grad().defined()) << "x_next must be detached";
}

TEST(Sde, OdeStepIsEuler) {
  auto x = Rows(kX), v = Rows(kV);
  auto out = OdeStep(x, v, torch::tensor({0.8f, 0.3f}), torch::tensor({0.6f, 0.1f}));
  auto expected = x + torch::tensor({-0.2f, -0.2f}).reshape({2, 1, 1, 1, 1}) * v;
  EXPECT_TRUE(torch::allclose(out, expected, 1e-6, 1e-6));
}

TEST(Sde, ParsesKinds) {
  EXPECT_EQ(*ParseSdeKind("dancegrpo"), SdeKind::kDanceGrpo);
  EXPECT_EQ(*ParseSdeKind("flowgrpo"), SdeKind::kFlowGrpo);
  auto bad = ParseSdeKind("ddim");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("flowgrpo"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo
