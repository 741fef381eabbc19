// What train loads before the first iteration, as its flags describe: the policy (the toy
// world's MLP, or a user's DiT with its weights, adapters and ZeRO-3 shards), its KL
// reference, prompt encoder, decoder, rewards and prompts.
#ifndef DANCEGRPO_DANCEGRPO_TOOLS_RUN_SETUP_H_
#define DANCEGRPO_DANCEGRPO_TOOLS_RUN_SETUP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/tools/run_flags.h"
#include "hpc/comm/communicator.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo::tools {

struct LoadedRun {
  std::shared_ptr<models::VelocityModel> policy;
  std::shared_ptr<models::VelocityModel> reference;  // kl_beta > 0 without LoRA
  std::shared_ptr<models::PromptEncoder> encoder;
  std::shared_ptr<models::LatentDecoder> decoder;
  std::vector<rewards::WeightedReward> rewards;
  std::vector<rewards::Prompt> prompts;
  double flops_per_forward = 0;  // model FLOPs of one sample's forward (DiT models)
  int lora_layers = 0;
};

// The built-in toy world of `targets` prompts (--model=toy). Sets run.trainer.latent_shape.
absl::StatusOr<LoadedRun> LoadToyRun(RunConfig& run, int targets);

// A user's model (run.model) and the prompts in `prompts_path`, checked against each other
// (every prompt has an embedding, the decoder fits the latents). Sets the trainer config's
// latent shape, base weights and base checksum. Collective over `world`: every rank loads
// the same weights; under ZeRO-3 the ranks load one at a time and keep their shards
// (sharded over `shard_comm`), so a node holds one whole model at once. A run that stores
// part of the model (LoRA, --trainable) has rank 0 checksum the base and broadcast it.
absl::StatusOr<LoadedRun> LoadUserRun(RunConfig& run, const std::string& prompts_path, hpc::Communicator& world,
                                      std::shared_ptr<hpc::Communicator> shard_comm);

}  // namespace dancegrpo::tools

#endif  // DANCEGRPO_DANCEGRPO_TOOLS_RUN_SETUP_H_
