// A training run's settings: one struct, with every default written once, here. The tools
// build it from their flags in one place (dancegrpo/tools/run_config.h), whose defaults are
// read from a default-constructed TrainerConfig; train, plan and evaluate all see the same
// values. ValidateTrainerConfig is the one check of it, run by the tools before anything is
// loaded and again by Trainer::Create.
#ifndef DANCEGRPO_DANCEGRPO_TRAINER_CONFIG_H_
#define DANCEGRPO_DANCEGRPO_TRAINER_CONFIG_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "c10/core/ScalarType.h"
#include "dancegrpo/sde.h"
#include "dancegrpo/update.h"
#include "models/lora.h"

namespace dancegrpo {

struct TrainerConfig {
  uint64_t seed = 1;
  int64_t iterations = 100;
  int prompts_per_iteration = 4;    // global
  int group_size = 8;               // G
  int steps = 8;                    // T
  double shift = 1.0;
  SdeConfig sde;
  bool shared_noise = true;
  int micro_batch = 4;              // samples per policy evaluation; 0 = all of a rank's samples at once
  int grad_accum_samples = 0;       // GA over all ranks; 0 = all trained samples (one step per iteration)
  double timestep_fraction = 0.6;
  double clip_range = 1e-4;
  double adv_clip_max = 5.0;
  bool global_normalization = false;
  bool pooled_std = false;          // group means, one within-group std over the iteration
  int best_of_n = 0;                // 0 = off
  int sequence_parallel = 1;        // sp: ranks that split each sample's sequence
  int ulysses = 0;                  // Ulysses degree inside sp (ring: sp / ulysses); 0 = gcd(sp, heads)
  double cfg_scale = 1.0;
  double kl_beta = 0.0;
  OptimizerConfig optimizer;        // hpc::AdamWConfig: its defaults (lr 3e-3, ...) are the run's
  // The learning rate over the run (ScheduledLr): "constant" (optimizer.lr throughout) or
  // "cosine" (optimizer.lr at iteration 0, down a half cosine to optimizer.lr x
  // lr_final_fraction at the last iteration).
  std::string lr_schedule = "constant";
  double lr_final_fraction = 0.1;
  std::vector<int64_t> latent_shape;  // [C, F, H, W]
  // Mixed precision: the policy computes in this dtype (fp32 or bf16 weights and
  // activations); the optimizer keeps fp32 masters and moments in its shards, and the SDE
  // step, log-probs, advantages and the ratio stay fp32. The policy is moved to `device`.
  torch::ScalarType compute_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  // The trained parameters (dancegrpo/trainable.h); empty = all. Frozen ones get no gradient
  // and no optimizer state, and checkpoints hold only the trained ones.
  std::string trainable;
  // 2: every rank holds every parameter, the optimizer state is sharded (ZeRO-2). 3: the
  // blocks' parameters are sharded too and gathered one block at a time (hpc/zero3.h); needs
  // a DiT and, to train, activation checkpointing.
  int zero_stage = 2;
  // LoRA: set when the policy carries adapters (models/lora.h; rank 0 = none). The adapters
  // are then all that trains, and a KL penalty's reference is the policy with its adapters
  // switched off: no second model, under ZeRO-2 or 3.
  models::LoraConfig lora;
  // Where the base weights came from (a file, or a preset and seed) and their checksum
  // (models::BaseChecksum). A checkpoint that does not hold the whole model (LoRA,
  // --trainable) records both, and resuming it over other base weights is refused.
  std::string base_weights;
  std::string base_checksum;
};

// "fp32" / "bf16" <-> dtype.
absl::StatusOr<torch::ScalarType> ParsePrecision(const std::string& name);
std::string PrecisionName(torch::ScalarType dtype);

// Fails, naming the setting and the fix, for a config no run can have: counts below their
// range, a stage other than 2/3, a non-positive noise scale, shift or clip range, a bad
// optimizer (hpc::ValidateAdamWConfig), a precision other than fp32/bf16, a guidance scale
// below 1, or a trained-step count of zero. It knows nothing of the world size or the model
// (the topology and the memory plan check those).
absl::Status ValidateTrainerConfig(const TrainerConfig& c);

// The learning rate of `iteration` (0-based) of c.iterations under c.lr_schedule. A function of
// the iteration alone, so a resumed run steps with the rates of an uninterrupted one.
double ScheduledLr(const TrainerConfig& c, int64_t iteration);

// The config as "key=value" lines (stored in checkpoints, compared on resume).
std::string DescribeConfig(const TrainerConfig& c);
// Those lines back as a map (unknown keys kept, malformed lines skipped).
std::map<std::string, std::string> ParseDescribedConfig(const std::string& text);

// The sampler: the keys of DescribeConfig that decide how clips are drawn (steps, shift,
// sde, eta, noise_level and the SDE window).
const std::vector<std::string>& SamplerKeys();
// Sets `c`'s sampler from a DescribeConfig text (a checkpoint's), except the keys in `keep`
// (settings the user gave explicitly). The SDE window is one setting: a kept window key keeps
// all three of `c`'s. Fails, naming the key, for a value that does not parse.
absl::Status ApplyDescribedSampler(const std::string& described, const std::set<std::string>& keep, TrainerConfig& c);
// The sampler in words, e.g. "dancegrpo SDE (eta 0.7), 10 steps, shift 1, SDE window 5 steps
// drawn per iteration".
std::string DescribeSampler(const TrainerConfig& c);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_TRAINER_CONFIG_H_
