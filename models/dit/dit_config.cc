#include "models/dit/dit_config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dancegrpo::models {

absl::Status ValidateDitConfig(const DitConfig& c) {
  for (auto [name, v] : {std::pair<const char*, int64_t>{"in_channels", c.in_channels},
                         {"out_channels", c.out_channels}, {"dim", c.dim}, {"ffn_dim", c.ffn_dim},
                         {"heads", c.heads}, {"layers", c.layers}, {"text_dim", c.text_dim},
                         {"freq_dim", c.freq_dim}, {"patch[0]", c.patch[0]}, {"patch[1]", c.patch[1]},
                         {"patch[2]", c.patch[2]}}) {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat("DiT ", name, " = ", v, "; it must be > 0"));
  }
  if (c.pooled_dim < 0) return absl::InvalidArgumentError("DiT pooled_dim must be >= 0");
  if (c.stem_channels < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("DiT stem_channels = ", c.stem_channels, "; use 0 (no stem) or more"));
  if (c.dim % c.heads != 0)
    return absl::InvalidArgumentError(absl::StrCat("DiT dim ", c.dim, " is not divisible by heads ", c.heads));
  if (c.head_dim() % 2 != 0 || c.head_dim() < 6)
    return absl::InvalidArgumentError(absl::StrCat("DiT head_dim ", c.head_dim(),
                                                   " must be even and >= 6 for 3D RoPE"));
  if (c.freq_dim % 2 != 0) return absl::InvalidArgumentError("DiT freq_dim must be even");
  if (c.text_len < 0) return absl::InvalidArgumentError(absl::StrCat("DiT text_len = ", c.text_len, "; it must be >= 0"));
  if (c.pad_text_to_len && c.text_len == 0)
    return absl::InvalidArgumentError("DiT pads text to text_len (Wan's convention) but text_len is 0; set text_len");
  return absl::OkStatus();
}

absl::StatusOr<DitConfig> DitPreset(const std::string& name) {
  DitConfig c;
  c.name = name;
  if (name == "tiny") {
    c.in_channels = c.out_channels = 4;
    c.dim = 64;
    c.ffn_dim = 128;
    c.heads = 4;
    c.layers = 2;
    c.text_dim = 32;
    c.pooled_dim = 32;
    c.freq_dim = 32;
  } else if (name == "small") {
    c.in_channels = c.out_channels = 4;
    c.dim = 192;
    c.ffn_dim = 512;
    c.heads = 6;
    c.layers = 4;
    c.text_dim = 64;
    c.pooled_dim = 64;
    c.freq_dim = 64;
  } else if (name == "wan2.1-1.3b") {
    c.dim = 1536;
    c.ffn_dim = 8960;
    c.heads = 12;
    c.layers = 30;
    c.text_len = 512;
    c.pad_text_to_len = true;
  } else if (name == "wan2.1-14b") {
    c.dim = 5120;
    c.ffn_dim = 13824;
    c.heads = 40;
    c.layers = 40;
    c.text_len = 512;
    c.pad_text_to_len = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown DiT preset '", name, "'; choose one of ", absl::StrJoin(DitPresetNames(), ", ")));
  }
  return c;
}

absl::StatusOr<DitConfig> DitConfigFromJson(const std::string& path) {
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat(path, ": ", why)); };
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open the model config ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object (expected Wan's config.json fields)");
  DitConfig c;
  c.name = path;
  const std::set<std::string> ignored = {"_class_name", "_diffusers_version", "_name_or_path", "architectures",
                                         "torch_dtype", "name"};
  bool text_attention_given = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    auto integer = [&](int64_t* dst) -> absl::Status {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        return bad(absl::StrCat("field '", key, "' must be a non-negative integer, got ", v.dump()));
      *dst = v.get<int64_t>();
      return absl::OkStatus();
    };
    absl::Status s = absl::OkStatus();
    if (key == "dim") s = integer(&c.dim);
    else if (key == "ffn_dim") s = integer(&c.ffn_dim);
    else if (key == "num_heads") s = integer(&c.heads);
    else if (key == "num_layers") s = integer(&c.layers);
    else if (key == "in_dim") s = integer(&c.in_channels);
    else if (key == "out_dim") s = integer(&c.out_channels);
    else if (key == "text_len") s = integer(&c.text_len);
    else if (key == "text_dim") s = integer(&c.text_dim);
    else if (key == "freq_dim") s = integer(&c.freq_dim);
    else if (key == "pooled_dim") s = integer(&c.pooled_dim);
    else if (key == "stem_channels") s = integer(&c.stem_channels);
    else if (key == "eps") {
      if (!v.is_number() || !(v.get<double>() > 0)) return bad("field 'eps' must be a positive number");
      c.eps = v.get<double>();
    } else if (key == "patch_size") {
      if (!v.is_array() || v.size() != 3) return bad("field 'patch_size' must be [frames, rows, cols], e.g. [1, 2, 2]");
      for (int i = 0; i < 3; ++i) {
        if (!v[i].is_number_integer() || v[i].get<int64_t>() < 1) return bad("patch_size entries must be integers >= 1");
        c.patch[i] = v[i].get<int64_t>();
      }
    } else if (key == "model_type") {
      if (v != "t2v")
        return bad(absl::StrCat("model_type ", v.dump(), " is not supported; this trainer takes Wan's text-to-video "
                                "DiT (\"t2v\"); image-to-video models need an image condition it does not feed"));
    } else if (key == "qk_norm" || key == "cross_attn_norm") {
      if (v != true) return bad(absl::StrCat("'", key, "': false is not supported (Wan2.1 uses true)"));
    } else if (key == "window_size") {
      if (v != nlohmann::json::array({-1, -1}))
        return bad("'window_size' other than [-1, -1] (local attention) is not supported");
    } else if (key == "text_attention") {
      text_attention_given = true;
      if (v == "wan_padded") c.pad_text_to_len = true;
      else if (v == "mask") c.pad_text_to_len = false;
      else return bad(absl::StrCat("'text_attention' is ", v.dump(), "; use \"wan_padded\" or \"mask\""));
    } else if (!ignored.count(key)) {
      return bad(absl::StrCat("unknown field '", key, "'; the DiT takes Wan's fields (dim, ffn_dim, num_heads, "
                              "num_layers, in_dim, out_dim, text_len, text_dim, freq_dim, patch_size, eps) and "
                              "pooled_dim, stem_channels, text_attention"));
    }
    if (!s.ok()) return s;
  }
  if (!text_attention_given) c.pad_text_to_len = c.text_len > 0;
  if (auto s = ValidateDitConfig(c); !s.ok()) return bad(std::string(s.message()));
  return c;
}

absl::StatusOr<DitConfig> DitConfigFromPresetOrFile(const std::string& preset_or_path) {
  const auto names = DitPresetNames();
  if (std::find(names.begin(), names.end(), preset_or_path) != names.end()) return DitPreset(preset_or_path);
  if (preset_or_path.size() > 5 && preset_or_path.substr(preset_or_path.size() - 5) == ".json")
    return DitConfigFromJson(preset_or_path);
  return absl::InvalidArgumentError(absl::StrCat("model '", preset_or_path, "' is neither a preset (",
                                                 absl::StrJoin(names, ", "), ") nor a config .json file"));
}

std::string DitConfigToJson(const DitConfig& c) {
  nlohmann::json j;
  j["model_type"] = "t2v";
  j["dim"] = c.dim;
  j["ffn_dim"] = c.ffn_dim;
  j["num_heads"] = c.heads;
  j["num_layers"] = c.layers;
  j["in_dim"] = c.in_channels;
  j["out_dim"] = c.out_channels;
  j["text_len"] = c.text_len;
  j["text_dim"] = c.text_dim;
  j["freq_dim"] = c.freq_dim;
  j["patch_size"] = {c.patch[0], c.patch[1], c.patch[2]};
  j["eps"] = c.eps;
  if (c.pooled_dim > 0) j["pooled_dim"] = c.pooled_dim;
  if (c.stem_channels > 0) j["stem_channels"] = c.stem_channels;
  j["text_attention"] = c.pad_text_to_len ? "wan_padded" : "mask";
  return j.dump(2) + "\n";
}

std::vector<std::string> DitPresetNames() { return {"tiny", "small", "wan2.1-1.3b", "wan2.1-14b"}; }

std::vector<ModuleShape> DitModules(const DitConfig& c) {
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  const int64_t d = c.dim, s = c.stem_channels, pv = c.patch_volume();
  std::vector<ModuleShape> out;
  if (s > 0) {  // the stem: two 3x3x3 convolutions
    out.push_back({"stem1", (c.in_channels * 27 + 1) * s, -1});
    out.push_back({"stem2", (s * 27 + 1) * s, -1});
  }
  out.push_back({"patch_embedding", (c.in_channels + s) * pv * d + d, -1});
  out.push_back({"text_embedding", linear(c.text_dim, d) + linear(d, d), -1});  // an MLP
  out.push_back({"time_embedding", linear(c.freq_dim, d) + linear(d, d), -1});  // an MLP
  out.push_back({"time_projection", linear(d, 6 * d), -1});
  if (c.pooled_dim > 0) out.push_back({"pooled_embedding", linear(c.pooled_dim, d), -1});
  const int64_t attention = 4 * linear(d, d) + 2 * d;  // q, k, v, o + RMSNorm(q), RMSNorm(k)
  for (int b = 0; b < c.layers; ++b) {
    const std::string p = absl::StrCat("blocks.", b, ".");
    out.push_back({p + "self_attn", attention, b});
    out.push_back({p + "cross_attn", attention, b});
    out.push_back({p + "norm3", 2 * d, b});  // affine LayerNorm
    out.push_back({p + "ffn", linear(d, c.ffn_dim) + linear(c.ffn_dim, d), b});
    out.push_back({p + "modulation", 6 * d, b});  // the modulation table
  }
  out.push_back({"head", linear(d, c.out_channels * pv) + 2 * d, -1});  // head + its modulation
  return out;
}

int64_t DitParameterCount(const DitConfig& c) {
  int64_t total = 0;
  for (const auto& m : DitModules(c)) total += m.count;
  return total;
}

double DitForwardFlops(const DitConfig& c, int64_t batch, int64_t tokens, int64_t text_tokens) {
  const double d = c.dim, L = tokens, T = text_tokens, B = batch;
  const double self_proj = 4 * L * d * d;                  // q, k, v, o
  const double self_attn = 2 * L * L * d;                  // QK^T and AV
  const double cross_proj = 2 * L * d * d + 2 * T * d * d;  // q, o on video; k, v on text
  const double cross_attn = 2 * L * T * d;
  const double ffn = 2 * L * d * c.ffn_dim;
  const double per_block = self_proj + self_attn + cross_proj + cross_attn + ffn;
  const double pixels = L * c.patch_volume(), s = c.stem_channels;
  const double stem = pixels * 27 * (c.in_channels * s + s * s);
  const double embed = stem + pixels * (c.in_channels + s) * d + T * (c.text_dim * d + d * d) +
                       L * d * c.out_channels * c.patch_volume();
  return 2.0 * B * (c.layers * per_block + embed);  // 2 FLOPs per multiply-add
}

}  // namespace dancegrpo::models
