// The policy update (Algorithm 1, lines 10-13).
//
// Per sample, a random subset of floor((T-1) tau) of the trainable steps 0..T-2 is drawn,
// keyed by (seed, iteration, prompt slot, member), never by rank. For each chosen step the
// log-prob of the recorded x_{t+1} is recomputed with gradients (PolicyStep, the rollout's
// code path), and
//   ratio = exp(log_prob_new - log_prob_old)
//   loss  = max(-A ratio, -A clamp(ratio, 1 - eps, 1 + eps)) / (GA * n_steps)
// is back-propagated. The update takes `optimizer_steps` optimizer steps (gradient-norm
// clipping and AdamW, hpc/sharding.h); GA = trained samples / optimizer_steps.
//
// Samples are visited in the rollout's micro-batches; for the k-th chosen step of every
// sample in a micro-batch one batched evaluation is made, so each row has the batch shape
// it had in rollout. Until the first optimizer step the ratio is therefore exactly 1.
// Optimizer step k takes the micro-batches whose global index (counting over all ranks)
// is k modulo optimizer_steps, so N ranks and one rank group the same samples into each
// step.
#ifndef DANCEGRPO_DANCEGRPO_UPDATE_H_
#define DANCEGRPO_DANCEGRPO_UPDATE_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/rollout.h"
#include "dancegrpo/sde.h"
#include "hpc/sharding.h"
#include "models/velocity_model.h"

namespace dancegrpo {

// AdamW with global gradient-norm clipping, optional EMA, sharded over the ranks
// (hpc/sharding.h; with one rank it is plain AdamW).
using OptimizerConfig = hpc::AdamWConfig;

struct UpdateConfig {
  uint64_t seed = 0;
  double timestep_fraction = 0.6;  // tau
  double clip_range = 1e-4;        // eps
  int optimizer_steps = 1;         // per update
  int micro_batch = 0;             // must match the rollout's
  int64_t first_global_sample = 0; // global index of this rank's first sample
  double cfg_scale = 1.0;
  double kl_beta = 0.0;            // KL to the frozen reference policy; 0 = off
  SdeConfig sde;
};

struct UpdateStats {
  int64_t trained_pairs = 0;   // (sample, step) pairs
  int64_t optimizer_steps = 0;
  double loss = 0;             // summed objective, as back-propagated (this rank)
  double mean_ratio = 0;
  double ratio_min = 0;
  double ratio_max = 0;
  double clip_fraction = 0;    // fraction of pairs with |ratio - 1| > eps
  double approx_kl = 0;        // mean of (log_prob_old - log_prob_new)^2 / 2
  double kl_to_reference = 0;  // mean per-pair KL to the reference (kl_beta > 0)
  double grad_norm = 0;        // mean pre-clip norm over the optimizer steps taken
  int64_t skipped_steps = 0;   // optimizer steps skipped for a non-finite gradient norm
};

// The trainable steps: 0..T-2 (the last step is never trained), restricted to the SDE
// window. A clear error when the window does not fit in them.
absl::StatusOr<std::vector<int64_t>> TrainableSteps(int steps, const SdeWindow& window = {});

// floor(|trainable steps| tau), with a clear error when it is 0, T < 2 or the window does
// not fit.
absl::StatusOr<int> TrainedStepCount(int steps, double timestep_fraction, const SdeWindow& window = {});

// The steps trained for one sample: the first `count` of a keyed permutation of the
// trainable steps.
std::vector<int64_t> TrainedTimesteps(uint64_t seed, int64_t iteration, int64_t prompt_slot,
                                      int64_t member, int steps, int count, const SdeWindow& window = {});

// Runs the update over `samples` (indices into the trajectories, increasing; e.g. all of
// them, or those kept by best-of-n). `reference` may be null unless kl_beta > 0.
// `loss_scale` multiplies the objective: 1 / (GA * n_steps) with GA counted over all
// data-parallel ranks, since the optimizer sums the ranks' gradients. Collective over the
// optimizer's communicator: every rank takes optimizer_steps steps.
absl::StatusOr<UpdateStats> UpdatePolicy(models::VelocityModel& policy,
                                         models::VelocityModel* reference,
                                         hpc::ShardedAdamW& optimizer, const UpdateConfig& config,
                                         const Trajectories& trajectories,
                                         const std::vector<double>& advantages,
                                         const std::vector<int64_t>& samples, double loss_scale);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_UPDATE_H_
