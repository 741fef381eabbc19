// One denoising step of rectified flow, from sigma to sigma_next < sigma, as a Gaussian
// policy step with a log-probability (ALGORITHM.md):
//   - DanceGRPO SDE (default): mean = x + d v + (-eta^2/2 * score) d, std = eta sqrt(delta),
//     score = -(x - (1 - sigma) x0_hat) / sigma^2, x0_hat = x - sigma v;
//   - Flow-GRPO SDE: std_t = a sqrt(sigma / (1 - sigma')), scale = std_t sqrt(-d),
//     mean = x (1 + std_t^2 d / (2 sigma)) + v (1 + std_t^2 (1 - sigma) / (2 sigma)) d;
//   - ODE (evaluation): x_next = x + d v.
// with d = sigma_next - sigma and delta = -d.
//
// sigma and sigma_next are per-row tensors [B], so rows of different timesteps can share a
// batch. All arithmetic is fp32. Rollout and training call the same SdeStep: rollout
// passes `noise` and draws x_next; training passes the recorded x_next. Given the same
// velocity bits, both produce the same log-prob bits (ratio == 1 on-policy).
#ifndef DANCEGRPO_DANCEGRPO_SDE_H_
#define DANCEGRPO_DANCEGRPO_SDE_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo {

enum class SdeKind { kDanceGrpo, kFlowGrpo };

absl::StatusOr<SdeKind> ParseSdeKind(const std::string& name);  // "dancegrpo" | "flowgrpo"
std::string SdeKindName(SdeKind kind);

// The steps that are stochastic (and trained), as in MixGRPO: steps begin..begin+size-1 take
// the SDE, every other step the deterministic ODE. size = 0 means every step is an SDE step.
// With shared initial noise, the samples of a group then differ only through the window's
// noise, so their reward differences are credited to the steps that caused them.
// With `random`, each iteration draws its own begin (rollout.h: WindowForIteration), so the
// early steps (layout, motion) and the late ones (detail) all get trained over a run.
struct SdeWindow {
  int begin = 0;
  int size = 0;
  bool random = false;  // begin drawn per iteration; resolve before calling Contains

  bool all() const { return size == 0; }
  bool Contains(int step) const { return all() || (step >= begin && step < begin + size); }
};

struct SdeConfig {
  SdeKind kind = SdeKind::kDanceGrpo;
  SdeWindow window;
  double eta = 0.3;          // DanceGRPO noise scale (0.25 for HunyuanVideo)
  double noise_level = 0.7;  // Flow-GRPO a
  // Flow-GRPO's sigma' replaces sigma == 1 (the first step) by sigma_1 = sigmas[1].
  double sigma_1 = 0.0;
};

// `config` with the schedule-dependent fields (sigma_1) taken from `sigmas`.
SdeConfig WithSchedule(SdeConfig config, const std::vector<double>& sigmas);

struct SdeStepResult {
  torch::Tensor next;      // x_next [B, ...]
  torch::Tensor mean;      // [B, ...], differentiable w.r.t. v
  torch::Tensor x0_hat;    // x - sigma v
  torch::Tensor std;       // [B, 1, ...] noise scale, broadcastable to x
  torch::Tensor log_prob;  // [B]: Gaussian log-density of x_next, meaned over non-batch dims
};

// If `given_next` is defined it is used, detached, as x_next (training). Otherwise
// x_next = mean + std * noise, and `noise` must be defined (rollout).
SdeStepResult SdeStep(const SdeConfig& config, const torch::Tensor& x, const torch::Tensor& v,
                      const torch::Tensor& sigma, const torch::Tensor& sigma_next,
                      const torch::Tensor& noise, const torch::Tensor& given_next);

// log N(next; mean, std^2), elementwise, then meaned over all non-batch dims -> [B].
torch::Tensor GaussianLogProb(const torch::Tensor& next, const torch::Tensor& mean,
                              const torch::Tensor& std);

// Deterministic Euler step x + (sigma_next - sigma) v.
torch::Tensor OdeStep(const torch::Tensor& x, const torch::Tensor& v, const torch::Tensor& sigma,
                      const torch::Tensor& sigma_next);

// [B] -> [B, 1, 1, ...] with as many trailing singleton dims as `like` has non-batch dims.
torch::Tensor RowsLike(const torch::Tensor& per_row, const torch::Tensor& like);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_SDE_H_
