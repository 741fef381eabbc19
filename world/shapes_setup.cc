#include "world/shapes_setup.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "models/safetensors.h"
#include "world/shapes_world.h"

namespace dancegrpo {

models::DitConfig ShapesDitConfig() {
  models::DitConfig c;
  c.name = "shapes";
  c.in_channels = c.out_channels = 3;
  c.patch = {1, 2, 2};
  c.dim = 64;
  c.ffn_dim = 192;
  c.heads = 4;
  c.layers = 3;
  c.text_dim = 32;
  c.pooled_dim = 32;
  c.freq_dim = 32;
  c.stem_channels = 32;  // without it the base does not learn the sign of the motion (README)
  return c;
}

ShapesModels MakeShapesModels(uint64_t seed) {
  torch::manual_seed(seed);
  ShapesModels m;
  models::TextEncoderConfig tc;
  tc.dim = 32;
  tc.heads = 2;
  tc.layers = 1;
  m.text = std::make_shared<models::TrainableTextEncoder>(models::WordTokenizer(world::Vocabulary(), 12), tc);
  m.dit = std::make_shared<models::VideoDit>(ShapesDitConfig());
  return m;
}

absl::Status SaveShapesBase(const ShapesModels& m, const std::string& path, const std::string& note) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : m.dit->named_parameters()) tensors.emplace_back("dit." + p.key(), p.value());
  for (const auto& p : m.text->module()->named_parameters()) tensors.emplace_back("text." + p.key(), p.value());
  return models::WriteSafetensors(path, tensors, {{"model", "shapes-world DiT + text encoder"}, {"note", note}});
}

absl::Status LoadShapesBase(ShapesModels& m, const std::string& path) {
  auto dit = models::ImportSafetensors(*m.dit, path, {{"dit.", ""}}, /*allow_unexpected=*/true);
  if (!dit.ok()) {
    return absl::Status(dit.status().code(),
                        absl::StrCat(dit.status().message(),
                                     "; the shapes DiT has a 32-channel convolutional stem since 2026-11-26, so a "
                                     "base made before then must be made again (configs/base/README.md has the "
                                     "command) or replaced by configs/base/shapes_base.safetensors"));
  }
  auto text = models::ImportSafetensors(*m.text->module(), path, {{"text.", ""}}, /*allow_unexpected=*/true);
  return text.status();
}

std::vector<rewards::Prompt> ShapesPrompts(bool held_out) {
  std::vector<rewards::Prompt> out;
  for (const auto& s : held_out ? world::HeldOutSpecs() : world::TrainSpecs())
    out.push_back({s.id(), world::PromptText(s)});
  return out;
}

}  // namespace dancegrpo
