#include "models/dit/dit.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>

#include "glog/logging.h"
#include "absl/strings/str_cat.h"
#include "hpc/seqpar.h"
#include "hpc/usp.h"
#include "models/dit/cpu_attention.h"
#include "models/dit/cpu_ops.h"
#include "models/dit/ring_attention.h"
#include "models/timestep_embedding.h"

namespace dancegrpo::models {

// ----------------------------------------------------------------------------- attention

torch::Tensor LocalAttention::Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& key_mask) {
#if TORCH_VERSION_MAJOR >= 2
  // No mask must be passed as "no optional", not as an undefined tensor: libtorch 2.x
  // rejects an undefined attn_mask ("attn_mask.dtype: nullptr"). Found on an H200 with
  // torch 2.11 by scripts/gpu_check.sh; the 1.13 CI build never compiles this branch.
  if (!key_mask.defined()) return at::scaled_dot_product_attention(q, k, v);
  return at::scaled_dot_product_attention(q, k, v, key_mask.to(torch::kBool).unsqueeze(1).unsqueeze(1));
#else
  // fp32 on the CPU: the fused kernel (cpu_attention.h); otherwise libtorch's ops, with q
  // scaled by 1/sqrt(d) before QK^T (L*d elements instead of the L*L scores).
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  if (CpuAttentionApplies(q, k, v)) return CpuAttention(q, k, v, key_mask, scale);
  auto scores = torch::matmul(q * scale, k.transpose(-2, -1));
  if (key_mask.defined()) {
    scores = scores.masked_fill(key_mask.to(torch::kBool).logical_not().unsqueeze(1).unsqueeze(1),
                                -std::numeric_limits<float>::infinity());
  }
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

torch::Tensor UlyssesAttention::Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& key_mask) {
  // [B, H, L/sp, d] -> [B, H/sp, L, d]: scatter heads (dim 1), gather sequence (dim 2).
  auto qh = hpc::AllToAll(q, *sp_, 1, 2), kh = hpc::AllToAll(k, *sp_, 1, 2), vh = hpc::AllToAll(v, *sp_, 1, 2);
  auto out = inner_->Attend(qh, kh, vh, key_mask);
  return hpc::AllToAll(out, *sp_, 2, 1);
}

// ----------------------------------------------------------------------------- norms, RoPE

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  if (CpuOpsApply(x) && CpuOpsApply(weight)) return CpuRmsNorm(x, weight, eps_);  // one fused pass (cpu_ops.h)
  auto xf = x.to(torch::kFloat32);
  return (xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_)).to(x.dtype()) * weight;
}

RopeTables RopeTables::Slice(int64_t begin, int64_t count) const {
  return {cos.narrow(0, begin, count), sin.narrow(0, begin, count)};
}

RopeTables MakeRopeTables(int64_t head_dim, const std::array<int64_t, 3>& grid) {
  // Wan's split of the d/2 rotation pairs over (frame, row, col): c - 2(c/3), c/3, c/3.
  const int64_t c = head_dim / 2;
  const std::array<int64_t, 3> pairs = {c - 2 * (c / 3), c / 3, c / 3};
  const int64_t L = grid[0] * grid[1] * grid[2];
  auto idx = torch::arange(L, torch::kLong);
  const std::array<torch::Tensor, 3> pos = {idx.div(grid[1] * grid[2], "floor"),
                                            idx.div(grid[2], "floor").remainder(grid[1]), idx.remainder(grid[2])};
  std::vector<torch::Tensor> angles;
  for (int a = 0; a < 3; ++a) {
    const int64_t axis_dim = 2 * pairs[a];
    auto freqs = 1.0 / torch::pow(10000.0, torch::arange(0, axis_dim, 2, torch::kFloat64) / axis_dim);
    angles.push_back(torch::outer(pos[a].to(torch::kFloat64), freqs));
  }
  auto theta = torch::cat(angles, 1);  // [L, c]
  return {torch::cos(theta).to(torch::kFloat32), torch::sin(theta).to(torch::kFloat32)};
}

torch::Tensor ApplyRopeHeadMajor(const torch::Tensor& x, const RopeTables& rope) {
  if (x.dim() == 4 && CpuOpsApply(x) && CpuOpsApply(rope.cos) && rope.cos.is_contiguous() && rope.sin.is_contiguous())
    return CpuRopeHeadMajor(x, rope.cos, rope.sin);  // one pass (cpu_ops.h)
  const auto s = x.sizes().vec();  // [B, L, H, d]
  // Read through the [B, H, L, d] view; the stack writes a fresh contiguous tensor, so the
  // result is head-major at no cost, and attention's GEMMs read it without a copy.
  auto pairs = x.to(torch::kFloat32).transpose(1, 2).reshape({s[0], s[2], s[1], s[3] / 2, 2});
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto cos = rope.cos.unsqueeze(0).unsqueeze(0), sin = rope.sin.unsqueeze(0).unsqueeze(0);  // [1, 1, L, d/2]
  return torch::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).reshape({s[0], s[2], s[1], s[3]}).to(x.dtype());
}

torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTables& rope) {
  return ApplyRopeHeadMajor(x, rope).transpose(1, 2);
}

// ----------------------------------------------------------------------------- attention module

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads, double eps) : heads_(heads) {
  q = register_module("q", LoraLinear(dim, dim));
  k = register_module("k", LoraLinear(dim, dim));
  v = register_module("v", LoraLinear(dim, dim));
  o = register_module("o", LoraLinear(dim, dim));
  norm_q = register_module("norm_q", RmsNorm(dim, eps));
  norm_k = register_module("norm_k", RmsNorm(dim, eps));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                     const torch::Tensor& context_mask, const RopeTables* rope,
                                     AttentionKernel& kernel) {
  const auto& kv_src = context.defined() ? context : x;
  const int64_t b = x.size(0), lq = x.size(1), lk = kv_src.size(1), d = x.size(2) / heads_;
  auto qh = norm_q(q(x)).view({b, lq, heads_, d});
  auto kh = norm_k(k(kv_src)).view({b, lk, heads_, d});
  auto vh = v(kv_src).view({b, lk, heads_, d});
  // [B, H, L, d] for the kernel; with RoPE, q and k come out of the rotation head-major.
  auto qt = rope != nullptr ? ApplyRopeHeadMajor(qh, *rope) : qh.transpose(1, 2);
  auto kt = rope != nullptr ? ApplyRopeHeadMajor(kh, *rope) : kh.transpose(1, 2);
  auto out = kernel.Attend(qt, kt, vh.transpose(1, 2), context_mask);
  return o(out.transpose(1, 2).reshape({b, lq, heads_ * d}));
}

// ----------------------------------------------------------------------------- block

namespace {
// GELU with the tanh approximation (Wan's FFN): the fused kernel for fp32 on the CPU.
class GeluTanhImpl : public torch::nn::Cloneable<GeluTanhImpl> {
 public:
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x) { return CpuOpsApply(x) ? CpuGeluTanh(x) : torch::gelu(x, "tanh"); }
};
TORCH_MODULE(GeluTanh);

torch::nn::Sequential Mlp(int64_t in, int64_t hidden, int64_t out) {
  return torch::nn::Sequential(LoraLinear(in, hidden), GeluTanh(), LoraLinear(hidden, out));
}

torch::nn::LayerNorm PlainLayerNorm(int64_t dim, double eps, bool affine) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps).elementwise_affine(affine));
}

// adaLN: norm(x) * (1 + scale) + shift, with per-sample shift and scale [B, 1, D]. One fused
// pass on fp32 CPU tensors (cpu_ops.h), else LayerNorm and one addcmul.
torch::Tensor NormModulate(torch::nn::LayerNorm& norm, const torch::Tensor& x, const torch::Tensor& shift,
                           const torch::Tensor& scale) {
  if (x.dim() == 3 && CpuOpsApply(x) && CpuOpsApply(shift) && CpuOpsApply(scale) &&
      !norm->options.elementwise_affine()) {
    const std::vector<int64_t> per_sample = {x.size(0), 1, x.size(2)};
    if (shift.sizes() == per_sample && scale.sizes() == per_sample)
      return CpuLayerNormModulate(x, shift, scale, norm->options.eps());
  }
  return torch::addcmul(shift, norm(x), 1 + scale);
}
}  // namespace

DitBlockImpl::DitBlockImpl(const DitConfig& c) {
  self_attn = register_module("self_attn", Attention(c.dim, c.heads, c.eps));
  cross_attn = register_module("cross_attn", Attention(c.dim, c.heads, c.eps));
  norm1 = register_module("norm1", PlainLayerNorm(c.dim, c.eps, false));
  norm2 = register_module("norm2", PlainLayerNorm(c.dim, c.eps, false));
  norm3 = register_module("norm3", PlainLayerNorm(c.dim, c.eps, true));
  ffn = register_module("ffn", Mlp(c.dim, c.ffn_dim, c.dim));
  modulation = register_parameter("modulation", torch::randn({1, 6, c.dim}) / std::sqrt(static_cast<double>(c.dim)));
}

torch::Tensor DitBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& e0, const torch::Tensor& context,
                                    const torch::Tensor& context_mask, const RopeTables& rope,
                                    AttentionKernel& kernel) {
  static LocalAttention cross_kernel;
  auto e = (modulation + e0).chunk(6, 1);  // each [B, 1, dim]
  auto x = x_in;
  // adaLN: shift + norm(x) * (1 + scale) (NormModulate) and x + y * gate (addcmul).
  auto y = self_attn(NormModulate(norm1, x, e[0], e[1]), torch::Tensor(), torch::Tensor(), &rope, kernel);
  x = torch::addcmul(x, y, e[2]);
  x = x + cross_attn(norm3(x), context, context_mask, nullptr, cross_kernel);
  y = ffn->forward(NormModulate(norm2, x, e[3], e[4]));
  return torch::addcmul(x, y, e[5]);
}

// ----------------------------------------------------------------------------- model

VideoDit::HeadImpl::HeadImpl(const DitConfig& c) {
  norm = register_module("norm", PlainLayerNorm(c.dim, c.eps, false));
  head = register_module("head", LoraLinear(c.dim, c.out_channels * c.patch_volume()));
  modulation = register_parameter("modulation", torch::randn({1, 2, c.dim}) / std::sqrt(static_cast<double>(c.dim)));
  torch::NoGradGuard no_grad;
  head->weight.zero_();  // the untrained model predicts v = 0
  head->bias.zero_();
}

VideoDit::VideoDit(const DitConfig& config) : config_(config) {
  const auto status = ValidateDitConfig(config);
  CHECK(status.ok()) << status;
  runner_.set_checkpointing(config.activation_checkpointing);
  const auto& c = config;
  if (c.stem_channels > 0) {  // registered first: the shipped base's initialisation order
    const int64_t s = c.stem_channels;
    stem1 = register_module("stem1", torch::nn::Conv3d(torch::nn::Conv3dOptions(c.in_channels, s, 3).padding(1)));
    stem2 = register_module("stem2", torch::nn::Conv3d(torch::nn::Conv3dOptions(s, s, 3).padding(1)));
  }
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv3d(
          torch::nn::Conv3dOptions(c.in_channels + c.stem_channels, c.dim, {c.patch[0], c.patch[1], c.patch[2]})
              .stride({c.patch[0], c.patch[1], c.patch[2]})));
  text_embedding = register_module("text_embedding", Mlp(c.text_dim, c.dim, c.dim));
  time_embedding = register_module(
      "time_embedding", torch::nn::Sequential(LoraLinear(c.freq_dim, c.dim), torch::nn::SiLU(),
                                              LoraLinear(c.dim, c.dim)));
  time_projection = register_module("time_projection",
                                    torch::nn::Sequential(torch::nn::SiLU(), LoraLinear(c.dim, 6 * c.dim)));
  if (c.pooled_dim > 0) pooled_embedding = register_module("pooled_embedding", LoraLinear(c.pooled_dim, c.dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) blocks->push_back(DitBlock(c));
  head = register_module("head", std::make_shared<HeadImpl>(c));
  self_attention_ = std::make_shared<LocalAttention>();
}

absl::StatusOr<int> VideoDit::SetSequenceParallel(std::shared_ptr<hpc::Communicator> sp, int ulysses) {
  if (!sp) return absl::InvalidArgumentError("no sequence-parallel communicator");
  const int n = sp->size();
  auto degree = hpc::UlyssesDegree(n, static_cast<int>(config_.heads), ulysses);
  if (!degree.ok())
    return absl::InvalidArgumentError(absl::StrCat("DiT '", config_.name, "': ", degree.status().message()));
  ulysses = *degree;
  if (n == 1) {
    sp_ = nullptr;
    self_attention_ = std::make_shared<LocalAttention>();
    return 1;
  }
  const int r = sp->rank();
  std::shared_ptr<AttentionKernel> kernel;
  if (ulysses == n) {
    kernel = std::make_shared<UlyssesAttention>(sp);
  } else {
    auto ring = sp->Split(/*color=*/r % ulysses, /*key=*/r / ulysses);  // the same place in every stage
    if (!ring.ok()) return ring.status();
    kernel = std::make_shared<RingAttention>(*ring);
    if (ulysses > 1) {
      auto stage = sp->Split(/*color=*/r / ulysses, /*key=*/r % ulysses);  // consecutive sequence blocks
      if (!stage.ok()) return stage.status();
      kernel = std::make_shared<UlyssesAttention>(*stage, kernel);
    }
  }
  sp_ = std::move(sp);
  self_attention_ = std::move(kernel);
  return ulysses;
}

RopeTables VideoDit::CachedRopeTables(const std::array<int64_t, 3>& grid, const torch::Device& device) {
  // Every denoising step and every update of a run sees the same few grids.
  const std::string key = absl::StrCat(grid[0], "x", grid[1], "x", grid[2], "@", device.str());
  std::lock_guard<std::mutex> lock(rope_mutex_);
  auto it = rope_cache_.find(key);
  if (it == rope_cache_.end()) {
    auto t = MakeRopeTables(config_.head_dim(), grid);
    it = rope_cache_.emplace(key, RopeTables{t.cos.to(device), t.sin.to(device)}).first;
  }
  return it->second;
}

std::array<int64_t, 3> VideoDit::TokenGrid(int64_t frames, int64_t height, int64_t width) const {
  const auto& p = config_.patch;
  return {(frames + p[0] - 1) / p[0], (height + p[1] - 1) / p[1], (width + p[2] - 1) / p[2]};
}

torch::Tensor VideoDit::Patchify(const torch::Tensor& x) {
  const auto grid = TokenGrid(x.size(2), x.size(3), x.size(4));
  const auto& p = config_.patch;
  // Zero-pad (back of each axis) to whole patches: odd sizes keep working.
  auto padded = torch::constant_pad_nd(
      x, {0, grid[2] * p[2] - x.size(4), 0, grid[1] * p[1] - x.size(3), 0, grid[0] * p[0] - x.size(2)}, 0.0);
  if (stem1) padded = torch::cat({padded, torch::gelu(stem2(torch::gelu(stem1(padded))))}, 1);
  return patch_embedding(padded).flatten(2).transpose(1, 2);  // [B, L, dim]
}

torch::Tensor VideoDit::Unpatchify(const torch::Tensor& tokens, const std::array<int64_t, 3>& grid, int64_t frames,
                                   int64_t height, int64_t width) const {
  const auto& p = config_.patch;
  const int64_t b = tokens.size(0), c = config_.out_channels;
  // Wan's head layout per token is (pf, ph, pw, c).
  auto t = tokens.view({b, grid[0], grid[1], grid[2], p[0], p[1], p[2], c});
  t = t.permute({0, 7, 1, 4, 2, 5, 3, 6}).reshape({b, c, grid[0] * p[0], grid[1] * p[1], grid[2] * p[2]});
  return t.narrow(2, 0, frames).narrow(3, 0, height).narrow(4, 0, width);
}

torch::Tensor VideoDit::Velocity(const torch::Tensor& x, const torch::Tensor& sigma, const Conditioning& cond) {
  const auto& c = config_;
  TORCH_CHECK(x.dim() == 5 && x.size(1) == c.in_channels, "VideoDit expects latents [B, ", c.in_channels,
              ", F, H, W], got ", x.sizes());
  TORCH_CHECK(cond.tokens.defined() && cond.tokens.size(-1) == c.text_dim, "VideoDit expects text tokens [B, L, ",
              c.text_dim, "]");
  const int64_t b = x.size(0);
  const auto grid = TokenGrid(x.size(2), x.size(3), x.size(4));
  // The compute dtype is the weights' (fp32, or bf16 compute copies under mixed precision):
  // inputs are cast to it here, and the velocity comes back in it (the SDE step is fp32).
  const auto dtype = patch_embedding->weight.scalar_type();
  auto tokens = Patchify(x.to(dtype));

  auto e = time_embedding->forward(TimestepEmbedding(sigma * 1000.0, c.freq_dim).to(dtype));
  if (c.pooled_dim > 0) {
    TORCH_CHECK(cond.pooled.defined() && cond.pooled.size(-1) == c.pooled_dim, "VideoDit expects pooled text [B, ",
                c.pooled_dim, "]");
    e = e + pooled_embedding(cond.pooled.to(e.dtype()));
  }
  auto e0 = time_projection->forward(e).view({b, 6, c.dim});
  torch::Tensor text = cond.tokens, mask;
  if (c.pad_text_to_len) {
    // Wan's convention: the real tokens, then zeros up to text_len, all attended to.
    TORCH_CHECK(text.size(1) <= c.text_len, "the text embeddings have ", text.size(1),
                " tokens, more than the model's text_len ", c.text_len, "; truncate them to ", c.text_len);
    if (cond.token_mask.defined()) text = text * cond.token_mask.to(text.dtype()).unsqueeze(-1);
    text = torch::constant_pad_nd(text, {0, 0, 0, c.text_len - text.size(1)}, 0.0);
  } else {
    mask = cond.token_mask.defined() ? cond.token_mask.to(torch::kBool)
                                     : torch::ones({b, text.size(1)}, text.options().dtype(torch::kBool));
  }
  // An all-true mask changes nothing: attend without one (no mask kernels; on CUDA it keeps
  // the fused attention kernels available).
  if (mask.defined() && mask.all().item<bool>()) mask = torch::Tensor();
  auto context = text_embedding->forward(text.to(dtype));
  auto rope = CachedRopeTables(grid, tokens.device());
  const int64_t total_tokens = tokens.size(1);
  if (sp_) {
    // This rank's slice of the sequence. Slicing is local: its backward leaves the other
    // slices' gradients to the other ranks, and the optimizer sums over ranks.
    TORCH_CHECK(total_tokens % sp_->size() == 0, "sequence parallelism over ", sp_->size(), " ranks needs the ",
                total_tokens, " video tokens (grid ", grid[0], "x", grid[1], "x", grid[2],
                ") to be divisible by sp; change the clip size or sp");
    const int64_t local = total_tokens / sp_->size();
    tokens = tokens.narrow(1, sp_->rank() * local, local);
    rope = rope.Slice(sp_->rank() * local, local);
  }

  // The blocks, through the block runner (hpc/block_runner.h): it gathers and releases
  // ZeRO-3's shards around each and recomputes blocks in backward. The function is kept
  // for that recompute, so it holds its tensors by value.
  AttentionKernel* kernel = self_attention_.get();
  const auto block_modules = Blocks();
  auto run = [block_modules, mask, rope, kernel](int64_t i, const torch::Tensor& x,
                                                 const std::vector<torch::Tensor>& shared) {
    return static_cast<DitBlockImpl*>(block_modules[i])->forward(x, shared[0], shared[1], mask, rope, *kernel);
  };
  tokens = runner_.Run(block_modules, tokens, {e0, context}, run);
  auto mod = (head->modulation + e.unsqueeze(1)).chunk(2, 1);
  auto out = head->head(NormModulate(head->norm, tokens, mod[0], mod[1]));
  if (sp_) out = hpc::GatherSequence(out, *sp_, 1);
  return Unpatchify(out, grid, x.size(2), x.size(3), x.size(4));
}

std::vector<torch::nn::Module*> VideoDit::Blocks() {
  std::vector<torch::nn::Module*> out;
  for (size_t i = 0; i < blocks->size(); ++i) out.push_back(blocks[i].get());
  return out;
}

}  // namespace dancegrpo::models
