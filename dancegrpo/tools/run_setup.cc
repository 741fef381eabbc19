#include "dancegrpo/tools/run_setup.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "dancegrpo/io/inputs.h"
#include "dancegrpo/trainable.h"
#include "hpc/status_macros.h"
#include "models/dit/dit_family.h"
#include "models/mlp_velocity.h"
#include "world/toy_world.h"

namespace dancegrpo::tools {

absl::StatusOr<LoadedRun> LoadToyRun(RunConfig& run, int targets) {
  TrainerConfig& c = run.trainer;
  if (c.lora.enabled())
    return absl::InvalidArgumentError(
        "--lora_rank: LoRA adapts a DiT's linear layers; the toy model has none (use --model=<preset or config.json>)");
  torch::manual_seed(c.seed);
  c.latent_shape = {4, 1, 2, 2};
  models::MlpVelocityConfig mc;
  mc.latent_shape = c.latent_shape;
  mc.condition_dim = targets;
  LoadedRun r;
  r.policy = std::make_shared<models::MlpVelocity>(mc);
  if (c.kl_beta > 0) r.reference = std::make_shared<models::MlpVelocity>(mc);
  r.encoder = std::make_shared<toy::OneHotPromptEncoder>(targets);
  r.rewards = {{std::make_shared<toy::TargetRegionReward>(targets, c.latent_shape, c.seed), 1.0}};
  r.prompts = toy::TargetPrompts(targets);
  return r;
}

absl::StatusOr<LoadedRun> LoadUserRun(RunConfig& run, const std::string& prompts_path, hpc::Communicator& world,
                                      std::shared_ptr<hpc::Communicator> shard_comm) {
  TrainerConfig& c = run.trainer;
  if (prompts_path.empty()) return absl::InvalidArgumentError("--prompts is required: a prompt file (one a line, or .jsonl)");
  auto options = run.model;
  // Checkpoints of part of a model record the base's checksum. Every rank loads the same
  // weights, so rank 0 alone reads them through (under ZeRO-3 the ranks load in turns) and
  // sends the result to the others below.
  const bool partial = c.lora.enabled() || !c.trainable.empty();
  options.checksum_base = partial && world.rank() == 0;
  // In the layout the run trains it in: under ZeRO-3 the ranks load one at a time and keep
  // their shards, so a node holds one whole model at once.
  absl::StatusOr<UserModel> user = absl::UnknownError("not loaded");
  auto load = [&]() -> absl::StatusOr<std::shared_ptr<models::VelocityModel>> {
    user = LoadUserModel(options);
    if (!user.ok()) return user.status();
    return std::shared_ptr<models::VelocityModel>(user->dit);
  };
  DGRPO_RETURN_IF_ERROR(LoadInLayout(c, world, shard_comm, load).status());
  LoadedRun r;
  DGRPO_ASSIGN_OR_RETURN(r.prompts, ReadPromptFile(prompts_path));
  DGRPO_RETURN_IF_ERROR(CheckPromptsHaveEmbeddings(*user->encoder, r.prompts, prompts_path, c.cfg_scale != 1));
  DGRPO_ASSIGN_OR_RETURN(c.latent_shape, LatentShapeFromFlags(user->config.in_channels));
  if (auto s = CheckDecoderFits(&user->decoder, c.latent_shape); !s.ok())
    return absl::Status(s.code(), absl::StrCat("--decoder: ", s.message()));
  r.policy = user->dit;
  const models::DitFamily family(user->config);
  r.flops_per_forward = family.ForwardFlops(1, family.Tokens(c.latent_shape),
                                            family.TextTokens(user->encoder->token_length()));
  // With LoRA the reference is the base itself: the policy with its adapters off.
  if (c.kl_beta > 0 && !c.lora.enabled()) r.reference = MakeDit(user->config);
  c.base_weights = user->base_weights;
  c.base_checksum = user->base_checksum;
  if (partial) DGRPO_RETURN_IF_ERROR(hpc::BroadcastString(world, c.base_checksum, 0));
  r.lora_layers = static_cast<int>(user->lora_layers.size());
  r.encoder = user->encoder;
  r.decoder = user->decoder;
  r.rewards = user->rewards;
  return r;
}

}  // namespace dancegrpo::tools
