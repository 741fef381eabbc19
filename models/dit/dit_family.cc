#include "models/dit/dit_family.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "models/dit/dit.h"

namespace dancegrpo::models {
namespace {

int64_t Ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

absl::StatusOr<std::shared_ptr<const ModelFamily>> ParseDit(const std::string& preset_or_path) {
  const auto names = DitPresetNames();
  const bool preset = std::find(names.begin(), names.end(), preset_or_path) != names.end();
  const bool json = preset_or_path.size() > 5 && preset_or_path.substr(preset_or_path.size() - 5) == ".json";
  auto config = DitConfigFromPresetOrFile(preset_or_path);
  if (!config.ok()) {
    if (preset || json) {  // ours, but wrong (a missing file included): not another family's to try
      const auto code = absl::IsNotFound(config.status()) ? absl::StatusCode::kInvalidArgument : config.status().code();
      return absl::Status(code, config.status().message());
    }
    return absl::NotFoundError(config.status().message());
  }
  return DitFamily::Make(*config);
}

const bool kRegistered = RegisterModelFamily("wan-dit", ParseDit);

}  // namespace

std::shared_ptr<VelocityModel> DitFamily::Build() const { return std::make_shared<VideoDit>(config_); }

std::vector<ModuleShape> DitFamily::Modules() const { return DitModules(config_); }

std::vector<LinearLayerShape> DitFamily::LinearLayers() const {
  const auto& c = config_;
  const int64_t d = c.dim;
  std::vector<LinearLayerShape> out = {
      {"text_embedding.0", c.text_dim, d}, {"text_embedding.2", d, d},  {"time_embedding.0", c.freq_dim, d},
      {"time_embedding.2", d, d},          {"time_projection.1", d, 6 * d}};
  if (c.pooled_dim > 0) out.push_back({"pooled_embedding", c.pooled_dim, d});
  for (int b = 0; b < c.layers; ++b) {
    const std::string p = absl::StrCat("blocks.", b, ".");
    for (const char* attn : {"self_attn.", "cross_attn."})
      for (const char* x : {"q", "k", "v", "o"}) out.push_back({absl::StrCat(p, attn, x), d, d});
    out.push_back({p + "ffn.0", d, c.ffn_dim});
    out.push_back({p + "ffn.2", c.ffn_dim, d});
  }
  out.push_back({"head.head", d, c.out_channels * c.patch_volume()});
  return out;
}

int64_t DitFamily::Tokens(const std::vector<int64_t>& latent) const {
  const auto& p = config_.patch;
  return Ceil(latent[1], p[0]) * Ceil(latent[2], p[1]) * Ceil(latent[3], p[2]);
}

int64_t DitFamily::TextTokens(int64_t encoder_tokens) const {
  // Wan pads the text to text_len; the masked variant attends to the encoder's tokens.
  if (config_.pad_text_to_len || encoder_tokens <= 0) return std::max<int64_t>(config_.text_len, 1);
  return encoder_tokens;
}

double DitFamily::ForwardFlops(int64_t batch, int64_t tokens, int64_t text_tokens) const {
  return DitForwardFlops(config_, batch, tokens, text_tokens);
}

// Counted per block from its operations (dit.cc):
//  per video token, tensors autograd keeps: self-attention 13 x dim (norm1 in/out,
//  modulated input, q, k, v, RMSNorm'd q and k, RoPE'd q and k, attention out, o, gated y),
//  cross-attention 5 x dim (norm3, q, normed q, attention out, o), feed-forward
//  4 x dim + 2 x ffn (norm2, modulated input, hidden, GELU, out, gated), residuals 2 x dim;
//  per text token: k, v and normed k of the context (3 x dim);
//  attention matrices without a fused kernel (libtorch 1.13 on the CPU): scores and softmax
//  for self [h/sp, L, L] and cross [h/sp, L, Lt] attention. Ring attention (sp / ulysses > 1,
//  ring_attention.cc) keeps no score matrix: its autograd node saves the fp32 output and
//  log-sum-exp of the rank's query block ([h/U, L/R, d] and [h/U, L/R]), and computes one key
//  block's scores at a time (the working sets below).
namespace {
struct RingShape {
  int64_t ring = 1, heads = 0, block = 0, fp32 = 1;  // degree, heads per rank, tokens per block, fp32 in elements
};
RingShape Ring(const DitConfig& c, const ActivationQuery& q) {
  RingShape r;
  const int u = std::max(1, q.ulysses);
  r.ring = q.sequence_parallel / u;
  r.heads = c.heads / u;
  r.block = q.full_tokens / std::max<int64_t>(1, r.ring);
  r.fp32 = Ceil(4, std::max(1, q.dtype_bytes));
  return r;
}
}  // namespace

int64_t DitFamily::Scores(const ActivationQuery& q) const {
  const int64_t cross = q.fused_attention ? 0 : 2 * config_.heads * q.tokens * q.text_tokens;
  const auto r = Ring(config_, q);
  if (r.ring > 1) return r.fp32 * (q.tokens * config_.dim + r.heads * r.block) + cross;
  if (q.fused_attention) return 0;
  const int64_t h = config_.heads / q.sequence_parallel;
  return 2 * h * q.full_tokens * q.full_tokens + cross;
}

int64_t DitFamily::BlockActivations(const ActivationQuery& q) const {
  const int64_t d = config_.dim, f = config_.ffn_dim;
  return q.tokens * (24 * d + 2 * f + q.extra_per_token) + 3 * q.text_tokens * d + Scores(q);
}

int64_t DitFamily::BlockInput(const ActivationQuery& q) const { return q.tokens * config_.dim; }

int64_t DitFamily::ForwardWorkingSet(const ActivationQuery& q) const {
  // The context and the widest block temporaries; under ring attention one key block's fp32
  // scores (exponentiated in place), the scaled queries, the running output, and the key/value
  // blocks in hand and arriving.
  const int64_t d = config_.dim, f = config_.ffn_dim;
  const auto r = Ring(config_, q);
  const int64_t attention = r.ring > 1 ? r.fp32 * (r.heads * r.block * r.block + 6 * q.tokens * d) + Scores(q) / 2
                                       : Scores(q) / 2;
  return q.text_tokens * d * 3 + q.tokens * (4 * d + 2 * f) + attention;
}

int64_t DitFamily::BackwardWorkingSet(const ActivationQuery& q) const {
  // Ring attention's backward: a key block's probabilities and dP (then dS, in place) in fp32,
  // and the scaled
  // queries, output gradient, dq, the key/value blocks and their travelling gradients, in
  // hand and arriving.
  const auto r = Ring(config_, q);
  if (r.ring <= 1) return 0;
  return r.fp32 * (2 * r.heads * r.block * r.block + 11 * q.tokens * config_.dim);
}

}  // namespace dancegrpo::models
