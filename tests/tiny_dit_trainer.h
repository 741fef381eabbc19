// A trainer of the "tiny" DiT preset on the toy target world (3 prompts), with a small
// trainable text encoder and a non-zero head, for trainer-level tests. Every call with the
// same config builds the same initial weights (on every rank).
#ifndef DANCEGRPO_TESTS_TINY_DIT_TRAINER_H_
#define DANCEGRPO_TESTS_TINY_DIT_TRAINER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/trainer.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::testing {

// A small run of that trainer: 2 prompts x group 4, latents 4x2x4x4 (8 tokens), 2 samples a
// micro-batch, clip 0.2, lr 1e-3, 2 iterations of 4 steps. Tests change what they exercise.
TrainerConfig TinyDitConfig();

// With config.lora set, LoRA adapters are attached to the policy (models/lora.h).
// `fp32_weights`, if given, receives the policy's initial fp32 weights (before the trainer
// casts them to the compute dtype).
absl::StatusOr<std::unique_ptr<Trainer>> MakeTinyDitTrainer(const TrainerConfig& config,
                                                            std::shared_ptr<hpc::Communicator> world = nullptr,
                                                            std::vector<torch::Tensor>* fp32_weights = nullptr);

// The full fp32 masters gathered from every rank (collective); undefined if the gather fails.
torch::Tensor Masters(Trainer& trainer);

// max |a - b| / max |b|: how far two runs' weights are apart.
double RelativeDiff(const torch::Tensor& a, const torch::Tensor& b);

// RelativeDiff allowed between two runs that should agree (N ranks against 1, ZeRO-3 against
// ZeRO-2, sequence parallel against not): their gradients differ only in fp32 rounding (other
// summation orders, other BLAS kernels for other shapes), which two AdamW steps at lr 1e-3 turn
// into up to ~1.1e-5 with OpenBLAS's AVX-512 kernels (below 1e-5 with its generic ones). A wrong
// shard, gradient or update moves the weights by the order of the updates themselves (> 1e-3).
constexpr double kEquivalenceTolerance = 3e-5;

}  // namespace dancegrpo::testing

#endif  // DANCEGRPO_TESTS_TINY_DIT_TRAINER_H_
