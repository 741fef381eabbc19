#include "models/dit/dit_config.h"

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
  } else if (name == "wan2.1-14b") {
    c.dim = 5120;
    c.ffn_dim = 13824;
    c.heads = 40;
    c.layers = 40;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown DiT preset '", name, "'; choose one of ", absl::StrJoin(DitPresetNames(), ", ")));
  }
  return c;
}

std::vector<std::string> DitPresetNames() { return {"tiny", "small", "wan2.1-1.3b", "wan2.1-14b"}; }

int64_t DitParameterCount(const DitConfig& c) {
  const int64_t d = c.dim;
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  const int64_t attention = 4 * linear(d, d) + 2 * d;  // q, k, v, o + RMSNorm(q), RMSNorm(k)
  const int64_t block = attention                       // self-attention
                        + 2 * d                         // norm3 (affine LayerNorm)
                        + attention                     // cross-attention
                        + linear(d, c.ffn_dim) + linear(c.ffn_dim, d)  // feed-forward
                        + 6 * d;                        // modulation table
  int64_t total = c.layers * block;
  const int64_t s = c.stem_channels;
  if (s > 0) total += (c.in_channels * 27 + 1) * s + (s * 27 + 1) * s;  // stem: two 3x3x3 convolutions
  total += (c.in_channels + s) * c.patch_volume() * d + d;        // patch embedding
  total += linear(c.text_dim, d) + linear(d, d);                  // text embedding MLP
  total += linear(c.freq_dim, d) + linear(d, d);                  // time embedding MLP
  total += linear(d, 6 * d);                                      // time projection
  if (c.pooled_dim > 0) total += linear(c.pooled_dim, d);         // pooled text projection
  total += linear(d, c.out_channels * c.patch_volume()) + 2 * d;  // head + its modulation
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
