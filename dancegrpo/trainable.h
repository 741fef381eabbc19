// Which parameters a run trains (--trainable): partial fine-tuning, as is common for large
// video models. A spec is a comma-separated list of name patterns; a pattern is dot-separated
// components matched against the first components of a parameter name, where a component
// "A-B" matches the integers A..B:
//   "blocks.24-29,head"  -> blocks.24.* .. blocks.29.* and head.*
//   "blocks.0.self_attn" -> the first block's self-attention
// The empty spec trains everything. Frozen parameters get no gradient and no optimizer state.
// A model with LoRA adapters (models/lora.h) trains exactly its adapters: the spec must then
// be empty.
#ifndef DANCEGRPO_DANCEGRPO_TRAINABLE_H_
#define DANCEGRPO_DANCEGRPO_TRAINABLE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "c10/core/ScalarType.h"
#include "hpc/zero3.h"
#include "dancegrpo/trainer_config.h"
#include "hpc/comm/communicator.h"
#include "models/velocity_model.h"

namespace dancegrpo {

// One flag per name: true = trained. Fails, naming the pattern and listing the model's
// top-level modules, for a malformed pattern or one that matches no parameter.
absl::StatusOr<std::vector<bool>> SelectTrainable(const std::vector<std::string>& names, const std::string& spec);

// The parameter names of each of the policy's blocks (VelocityModel::Blocks), as the
// policy names them ("blocks.3.ffn.0.weight"): ZeRO-3's gather groups.
std::vector<std::vector<std::string>> BlockParameterNames(models::VelocityModel& policy);

// ZeRO-3: shards the policy's parameter groups (a DiT's blocks) over `comm`, each group
// split into a trained and a frozen unit by `trainable`, keeps this rank's slices in
// `dtype` on `device` (trained ones also as fp32 masters), and installs the gatherer in
// the policy's block runner. Local: no communication, so ranks may call it one at a time (hpc::ShardTurns).
// The policy's weights must be on the CPU (fp32, or bf16 as stored: the fp32 masters are then
// their exact widening). Fails for a policy without such groups.
absl::StatusOr<std::shared_ptr<hpc::ShardedParameters>> ShardPolicy(models::VelocityModel& policy,
                                                                    const std::string& trainable,
                                                                    std::shared_ptr<hpc::Communicator> comm,
                                                                    torch::ScalarType dtype, torch::Device device);

// Loads the policy in the layout the run trains it in; with Trainer::Create (which shards
// a whole policy given under ZeRO-3 the same way) the one place that decides it: whole, or
// under ZeRO-3 (config.zero_stage == 3) this rank's shards of its blocks over `shard_comm`,
// the ranks of `world` loading one at a time (hpc::ShardTurns) so that a node holds one
// whole model at once. `load` materialises the whole policy (fp32 or as stored, on the CPU).
// Collective over `world`.
absl::StatusOr<std::shared_ptr<models::VelocityModel>> LoadInLayout(
    const TrainerConfig& config, hpc::Communicator& world, std::shared_ptr<hpc::Communicator> shard_comm,
    const std::function<absl::StatusOr<std::shared_ptr<models::VelocityModel>>()>& load);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_TRAINABLE_H_
