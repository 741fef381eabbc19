// The policy used in the shapes world (world/shapes_world.h): a small video DiT over the
// clip itself and a small trainable text encoder, shared by the pretrain, train and
// evaluate programs. The base checkpoint is one .safetensors file with the DiT under "dit."
// and the text encoder under "text.".
#ifndef DANCEGRPO_WORLD_SHAPES_SETUP_H_
#define DANCEGRPO_WORLD_SHAPES_SETUP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "models/dit/dit.h"
#include "models/text/text_encoder.h"
#include "rewards/reward.h"

namespace dancegrpo {

models::DitConfig ShapesDitConfig();

struct ShapesModels {
  std::shared_ptr<models::VideoDit> dit;
  std::shared_ptr<models::TrainableTextEncoder> text;
};

// Fresh models; the initialisation is drawn from `seed` (the same on every rank).
ShapesModels MakeShapesModels(uint64_t seed);
absl::Status SaveShapesBase(const ShapesModels& models, const std::string& path, const std::string& note);
absl::Status LoadShapesBase(ShapesModels& models, const std::string& path);

// The shapes-world prompts of the training or the held-out split, ids = spec ids.
std::vector<rewards::Prompt> ShapesPrompts(bool held_out);

}  // namespace dancegrpo

#endif  // DANCEGRPO_WORLD_SHAPES_SETUP_H_
