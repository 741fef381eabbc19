#include "dancegrpo/sde.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dancegrpo {

absl::StatusOr<SdeKind> ParseSdeKind(const std::string& name) {
  if (name == "dancegrpo") return SdeKind::kDanceGrpo;
  if (name == "flowgrpo") return SdeKind::kFlowGrpo;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown SDE '", name, "'; use 'dancegrpo' or 'flowgrpo'"));
}

std::string SdeKindName(SdeKind kind) { return kind == SdeKind::kDanceGrpo ? "dancegrpo" : "flowgrpo"; }

SdeConfig WithSchedule(SdeConfig config, const std::vector<double>& sigmas) {
  if (sigmas.size() > 1) config.sigma_1 = sigmas[1];
  return config;
}

torch::Tensor RowsLike(const torch::Tensor& per_row, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  return per_row.to(torch::kFloat32).reshape(shape);
}

torch::Tensor GaussianLogProb(const torch::Tensor& next, const torch::Tensor& mean,
                              const torch::Tensor& std) {
  static const double kLogSqrt2Pi = std::log(std::sqrt(2.0 * M_PI));
  auto lp = -(next - mean).pow(2) / (2.0 * std.pow(2)) - torch::log(std) - kLogSqrt2Pi;
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < lp.dim(); ++d) dims.push_back(d);
  return lp.mean(dims);
}

torch::Tensor OdeStep(const torch::Tensor& x, const torch::Tensor& v, const torch::Tensor& sigma,
                      const torch::Tensor& sigma_next) {
  auto d = RowsLike(sigma_next, x) - RowsLike(sigma, x);
  return x.to(torch::kFloat32) + d * v.to(torch::kFloat32);
}

SdeStepResult SdeStep(const SdeConfig& config, const torch::Tensor& x_in, const torch::Tensor& v_in,
                      const torch::Tensor& sigma_rows, const torch::Tensor& sigma_next_rows,
                      const torch::Tensor& noise, const torch::Tensor& given_next) {
  CHECK_EQ(sigma_rows.numel(), x_in.size(0)) << "one sigma per batch row";
  const auto x = x_in.to(torch::kFloat32);
  const auto v = v_in.to(torch::kFloat32);
  const auto sigma = RowsLike(sigma_rows, x);
  const auto sigma_next = RowsLike(sigma_next_rows, x);
  const auto d = sigma_next - sigma;  // negative
  SdeStepResult r;
  r.x0_hat = x - sigma * v;
  if (config.kind == SdeKind::kDanceGrpo) {
    auto mean = x + d * v;
    auto score = -(x - (1.0 - sigma) * r.x0_hat) / sigma.pow(2);
    r.mean = mean + (-0.5 * config.eta * config.eta * score) * d;
    r.std = config.eta * torch::sqrt(sigma - sigma_next);
  } else {
    auto sigma_prime = torch::where(sigma == 1.0, torch::full_like(sigma, config.sigma_1), sigma);
    auto std_t = config.noise_level * torch::sqrt(sigma / (1.0 - sigma_prime));
    auto var_t = std_t.pow(2);
    r.mean = x * (1.0 + var_t / (2.0 * sigma) * d) + v * (1.0 + var_t * (1.0 - sigma) / (2.0 * sigma)) * d;
    r.std = std_t * torch::sqrt(-d);
  }
  if (given_next.defined()) {
    r.next = given_next.detach().to(torch::kFloat32);
  } else {
    CHECK(noise.defined()) << "SdeStep needs noise (rollout) or the recorded next sample (training)";
    r.next = (r.mean + r.std * noise.to(torch::kFloat32)).detach();
  }
  r.log_prob = GaussianLogProb(r.next, r.mean, r.std);
  return r;
}

}  // namespace dancegrpo
