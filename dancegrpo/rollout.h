// Rollout (Algorithm 1, lines 2-6): G samples per prompt, drawn with the SDE sampler,
// recording the latents and the log-prob of every step. With an SDE window (sde.h), only
// the window's steps are stochastic; the others take the ODE step and record log-prob 0.
//
// The caller names each sample by (prompt slot, member within the prompt's group); a rank
// may hold whole groups or a part of one. With
// shared noise, all G samples of a prompt start from the same x_0 ~ N(0, I), keyed by
// (seed, iteration, prompt slot); they then differ only through the SDE noise of each
// step, keyed by (seed, iteration, prompt slot, member, step). No key involves the rank.
//
// The policy is evaluated in micro-batches of `micro_batch` consecutive samples. The
// update (update.h) evaluates the same micro-batches, so each row sees the same batch
// shape in both phases and the recomputed log-probs are bitwise equal to these.
#ifndef DANCEGRPO_DANCEGRPO_ROLLOUT_H_
#define DANCEGRPO_DANCEGRPO_ROLLOUT_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dancegrpo/sde.h"
#include "models/velocity_model.h"

namespace dancegrpo {

struct RolloutConfig {
  uint64_t seed = 0;
  bool shared_noise = true;
  int micro_batch = 0;      // samples per policy evaluation; 0 = all samples at once
  double cfg_scale = 1.0;   // classifier-free guidance; 1 = off
  SdeConfig sde;
  std::vector<int64_t> latent_shape;  // [C, F, H, W]
};

struct Trajectories {
  int64_t iteration = 0;
  std::vector<double> sigmas;         // T + 1 values, sigmas[0] = 1, sigmas[T] = 0
  torch::Tensor latents;              // [N, T+1, C, F, H, W]; index i is x at sigmas[i]
  torch::Tensor log_probs;            // [N, T]; step i goes from sigmas[i] to sigmas[i+1]
                                      // (0 for the ODE steps outside the SDE window)
  torch::Tensor final_x0;             // [N, C, F, H, W]: x0_hat of the last step (decoded)
  std::vector<int64_t> prompt_slot;   // [N]: the prompt's slot in this iteration's batch
  std::vector<int64_t> member;        // [N]: index within the prompt's group
  models::Conditioning conditions;    // [N] rows
  models::Conditioning null_condition;  // [1] row, defined when cfg_scale != 1

  int64_t num_samples() const { return latents.defined() ? latents.size(0) : 0; }
  int steps() const { return static_cast<int>(sigmas.size()) - 1; }
};

// The guided velocity v_u + s (v_c - v_u) (or v_c when s == 1).
torch::Tensor GuidedVelocity(models::VelocityModel& policy, double cfg_scale, const torch::Tensor& x,
                             const torch::Tensor& sigma, const models::Conditioning& condition,
                             const models::Conditioning& null_condition);

// The guided velocity followed by one SDE step.
// The one code path for the policy's log-probs, in rollout and in training.
SdeStepResult PolicyStep(models::VelocityModel& policy, const SdeConfig& sde, double cfg_scale,
                         const torch::Tensor& x, const torch::Tensor& sigma,
                         const torch::Tensor& sigma_next, const models::Conditioning& condition,
                         const models::Conditioning& null_condition, const torch::Tensor& noise,
                         const torch::Tensor& given_next);

// The initial noise of one sample: shared by the group when `shared_noise`.
torch::Tensor InitialNoise(const RolloutConfig& config, int64_t iteration, int64_t prompt_slot,
                           int64_t member);

// The window used in `iteration`: `window` itself, or, when it is random, one of size
// window.size whose begin is drawn uniformly from the trainable steps, keyed by (seed,
// iteration) so that every rank and a replay agree.
SdeWindow WindowForIteration(const SdeWindow& window, uint64_t seed, int64_t iteration, int steps);

struct SampleId {
  int64_t prompt_slot = 0;  // the prompt's slot in this iteration's global batch
  int64_t member = 0;       // index within the prompt's group, 0..G-1
};

// Draws the given samples. `conditions` has one row per sample; `null_condition` one row
// (used when cfg_scale != 1). Runs without gradients.
// `micro_batch_done(begin, end)`, when given, runs after each micro-batch's last step, with
// rows [begin, end) of the trajectories complete: scored_rollout.h decodes them and sends
// them to served rewards there, while the next micro-batch is drawn.
using MicroBatchDone = std::function<void(const Trajectories& so_far, int64_t begin, int64_t end)>;
Trajectories Rollout(models::VelocityModel& policy, const RolloutConfig& config,
                     const std::vector<double>& sigmas, int64_t iteration,
                     const std::vector<SampleId>& samples, const models::Conditioning& conditions,
                     const models::Conditioning& null_condition, const MicroBatchDone& micro_batch_done = nullptr);

// [begin, end) sample ranges of the micro-batches over n samples.
std::vector<std::pair<int64_t, int64_t>> MicroBatches(int64_t n, int micro_batch);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_ROLLOUT_H_
