#include "models/lora_keys.h"

#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace dancegrpo::models {

bool LoraLayerInBlock(const std::string& layer) {
  const std::vector<std::string> parts = absl::StrSplit(layer, '.');
  if (parts.size() < 3 || parts[0] != "blocks" || parts[1].empty()) return false;
  for (char c : parts[1])
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

bool DiffusersWanConvertsLayer(const std::string& layer) {
  static const std::set<std::string> kOutside = {"head.head",        "time_projection.1", "text_embedding.0",
                                                 "text_embedding.2", "time_embedding.0",  "time_embedding.2",
                                                 "img_emb.proj.1",   "img_emb.proj.3"};
  if (!LoraLayerInBlock(layer)) return kOutside.count(layer) > 0;
  static const std::set<std::string> kInBlock = {
      "self_attn.q",  "self_attn.k",  "self_attn.v",     "self_attn.o",     "cross_attn.q", "cross_attn.k",
      "cross_attn.v", "cross_attn.o", "cross_attn.k_img", "cross_attn.v_img", "ffn.0",        "ffn.2"};
  const auto second_dot = layer.find('.', layer.find('.') + 1);
  return kInBlock.count(layer.substr(second_dot + 1)) > 0;
}

}  // namespace dancegrpo::models
