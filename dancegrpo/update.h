// The policy update (Algorithm 1, lines 10-13).
//
// Per sample, a random subset of floor((T-1) tau) of the trainable steps 0..T-2 is drawn,
// keyed by (seed, iteration, prompt slot, member), never by rank. For each chosen step the
// log-prob of the recorded x_{t+1} is recomputed with gradients (PolicyStep, the rollout's
// code path), and
//   ratio = exp(log_prob_new - log_prob_old)
//   loss  = max(-A ratio, -A clamp(ratio, 1 - eps, 1 + eps)) / (GA * n_steps)
// is back-propagated. Every GA samples (`grad_accum_samples`) the gradient norm is
// clipped, AdamW steps and the gradients are zeroed (PolicyOptimizer).
//
// Samples are visited in the rollout's micro-batches; for the k-th chosen step of every
// sample in a micro-batch one batched evaluation is made, so each row has the batch shape
// it had in rollout. Until the first optimizer step the ratio is therefore exactly 1.
#ifndef DANCEGRPO_DANCEGRPO_UPDATE_H_
#define DANCEGRPO_DANCEGRPO_UPDATE_H_

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/rollout.h"
#include "dancegrpo/sde.h"
#include "models/velocity_model.h"

namespace dancegrpo {

struct OptimizerConfig {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-4;
  double max_grad_norm = 1.0;
  bool ema = false;
  double ema_decay = 0.995;
};

// AdamW with global gradient-norm clipping and an optional EMA of the weights.
class PolicyOptimizer {
 public:
  PolicyOptimizer(std::vector<torch::Tensor> parameters, const OptimizerConfig& config);
  // Clips the gradients to max_grad_norm, steps AdamW, zeroes the gradients and updates
  // the EMA. Returns the gradient norm before clipping.
  double Step();
  void ZeroGrad();
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // EMA weights, parallel to parameters(); empty unless config.ema.
  const std::vector<torch::Tensor>& ema() const { return ema_; }
  torch::optim::AdamW& adamw() { return *adamw_; }
  int64_t steps_taken() const { return steps_; }

 private:
  OptimizerConfig config_;
  std::vector<torch::Tensor> parameters_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::vector<torch::Tensor> ema_;
  int64_t steps_ = 0;
};

struct UpdateConfig {
  uint64_t seed = 0;
  double timestep_fraction = 0.6;  // tau
  double clip_range = 1e-4;        // eps
  int grad_accum_samples = 1;      // GA
  int micro_batch = 0;             // must match the rollout's
  double cfg_scale = 1.0;
  double kl_beta = 0.0;            // KL to the frozen reference policy; 0 = off
  SdeConfig sde;
};

struct UpdateStats {
  int64_t trained_pairs = 0;   // (sample, step) pairs
  int64_t optimizer_steps = 0;
  double loss = 0;             // summed objective, as back-propagated
  double mean_ratio = 0;
  double ratio_min = 0;
  double ratio_max = 0;
  double clip_fraction = 0;    // fraction of pairs with |ratio - 1| > eps
  double approx_kl = 0;        // mean of (log_prob_old - log_prob_new)^2 / 2
  double kl_to_reference = 0;  // mean per-pair KL to the reference (kl_beta > 0)
  double grad_norm = 0;        // mean pre-clip norm over the optimizer steps
};

// floor((T - 1) tau), with a clear error when it is 0 or T < 2.
absl::StatusOr<int> TrainedStepCount(int steps, double timestep_fraction);

// The steps trained for one sample: the first TrainedStepCount of a keyed permutation of
// 0..T-2.
std::vector<int64_t> TrainedTimesteps(uint64_t seed, int64_t iteration, int64_t prompt_slot,
                                      int64_t member, int steps, int count);

// Runs the update over `samples` (indices into the trajectories, increasing; e.g. all of
// them, or those kept by best-of-n). `reference` may be null unless kl_beta > 0.
absl::StatusOr<UpdateStats> UpdatePolicy(models::VelocityModel& policy,
                                         models::VelocityModel* reference,
                                         PolicyOptimizer& optimizer, const UpdateConfig& config,
                                         const Trajectories& trajectories,
                                         const std::vector<double>& advantages,
                                         const std::vector<int64_t>& samples);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_UPDATE_H_
