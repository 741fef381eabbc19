// A text-to-video rectified-flow transformer (a VelocityModel) in libtorch. The
// architecture and parameter names follow Wan2.1's DiT (see dit_config.h):
//
//   x [B, C, F, H, W] --pad to whole patches, 3D patch embedding--> tokens [B, L, dim]
//   sigma * 1000 --sinusoid, MLP (+ pooled text)--> e [B, dim] --> e0 [B, 6, dim]
//   text tokens [B, Lt, text_dim] --MLP--> context [B, Lt, dim]
//   blocks: x += g1 * SelfAttn(RoPE-3D; adaLN(x))
//           x += CrossAttn(LN(x), context)
//           x += g2 * FFN(adaLN(x))
//   head: adaLN(x) -> Linear (zero-initialised) -> unpatchify, crop -> velocity [B, C, F, H, W]
//
// Every linear layer is a LoraLinear (models/lora.h): LoRA adapters can be attached to any.
// Rows are independent and the forward pass is deterministic (the VelocityModel contract).
// Self-attention goes through a replaceable AttentionKernel (attention.h). With
// activation checkpointing, each block keeps only its inputs and recomputes its
// activations during backward; gradients are unchanged. Under ZeRO-3 each block's
// parameters are gathered around its forward and its recompute (see RunBlocks in dit.cc).
#ifndef DANCEGRPO_MODELS_DIT_DIT_H_
#define DANCEGRPO_MODELS_DIT_DIT_H_

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "models/dit/attention.h"
#include "models/dit/dit_config.h"
#include "models/lora.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

// Normalises over the last dim by the root mean square, with a learned gain.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

// cos/sin tables of the 3D rotary embedding for a token grid, [L, head_dim / 2] each.
struct RopeTables {
  torch::Tensor cos;
  torch::Tensor sin;
  // Rows [begin, begin + count), for a sequence shard.
  RopeTables Slice(int64_t begin, int64_t count) const;
};
RopeTables MakeRopeTables(int64_t head_dim, const std::array<int64_t, 3>& grid);
// Rotates consecutive pairs of x [B, L, H, d] by the tables' angles.
torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTables& rope);
// The same, returned as a contiguous [B, H, L, d] (the layout attention reads).
torch::Tensor ApplyRopeHeadMajor(const torch::Tensor& x, const RopeTables& rope);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads, double eps);
  // Self-attention when `context` is undefined (with RoPE), else cross-attention.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const torch::Tensor& context_mask,
                        const RopeTables* rope, AttentionKernel& kernel);
  LoraLinear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  RmsNorm norm_q{nullptr}, norm_k{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(Attention);

class DitBlockImpl : public torch::nn::Module {
 public:
  explicit DitBlockImpl(const DitConfig& c);
  // x [B, L, dim], e0 [B, 6, dim], context [B, Lt, dim], context_mask [B, Lt].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e0, const torch::Tensor& context,
                        const torch::Tensor& context_mask, const RopeTables& rope, AttentionKernel& kernel);
  Attention self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Sequential ffn{nullptr};
  torch::Tensor modulation;
};
TORCH_MODULE(DitBlock);

class VideoDit : public VelocityModel {
 public:
  // `config` must pass ValidateDitConfig (checked).
  explicit VideoDit(const DitConfig& config);

  torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma, const Conditioning& condition) override;

  const DitConfig& config() const { return config_; }
  void set_activation_checkpointing(bool on) {
    config_.activation_checkpointing = on;
    runner_.set_checkpointing(on);
  }
  // Replaces the self-attention kernel.
  void set_self_attention(std::shared_ptr<AttentionKernel> kernel) { self_attention_ = std::move(kernel); }
  // Sequence parallelism: each rank of `sp` runs the blocks on its slice of the token
  // sequence (token counts must then be divisible by sp) and the head's output is gathered.
  // Self-attention is USP (Ulysses x Ring): `sp`'s ranks form sp / ulysses ring stages of
  // `ulysses` consecutive ranks; the Ulysses all-to-all (UlyssesAttention) runs inside each
  // stage, so ulysses must divide the heads, and ring attention (ring_attention.h) across the
  // stages, so any head count splits. ulysses = sp is Ulysses alone, 1 ring attention alone,
  // 0 the largest degree dividing sp and the heads (gcd). Returns the degree in use; fails,
  // naming the fix, for a degree that does not divide sp or the heads. Collective over `sp`.
  absl::StatusOr<int> SetSequenceParallel(std::shared_ptr<hpc::Communicator> sp, int ulysses) override;
  // The transformer blocks, run through the block runner (ZeRO-3, checkpointing).
  std::vector<torch::nn::Module*> Blocks() override;
  hpc::BlockRunner* block_runner() override { return &runner_; }

  // The RoPE tables of a token grid on a device, built once per (grid, device) and kept.
  RopeTables CachedRopeTables(const std::array<int64_t, 3>& grid, const torch::Device& device);
  // Token grid (F', H', W') of a latent of size (F, H, W), after padding to whole patches.
  std::array<int64_t, 3> TokenGrid(int64_t frames, int64_t height, int64_t width) const;
  // [B, C, F, H, W] -> [B, L, C * pf * ph * pw]-ordered patches embedded to [B, L, dim].
  torch::Tensor Patchify(const torch::Tensor& x);
  // [B, L, out * pf * ph * pw] -> [B, out, F, H, W] (cropping the padding).
  torch::Tensor Unpatchify(const torch::Tensor& tokens, const std::array<int64_t, 3>& grid, int64_t frames,
                           int64_t height, int64_t width) const;

  torch::nn::Conv3d stem1{nullptr}, stem2{nullptr};  // the optional pixel-level stem
  torch::nn::Conv3d patch_embedding{nullptr};
  torch::nn::Sequential text_embedding{nullptr}, time_embedding{nullptr}, time_projection{nullptr};
  LoraLinear pooled_embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  struct HeadImpl : torch::nn::Module {
    HeadImpl(const DitConfig& c);
    torch::nn::LayerNorm norm{nullptr};
    LoraLinear head{nullptr};
    torch::Tensor modulation;
  };
  std::shared_ptr<HeadImpl> head;

 private:
  DitConfig config_;
  std::shared_ptr<AttentionKernel> self_attention_;
  std::shared_ptr<hpc::Communicator> sp_;
  hpc::BlockRunner runner_;
  std::mutex rope_mutex_;
  std::map<std::string, RopeTables> rope_cache_;  // "FxHxW@device" -> the grid's tables
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_DIT_H_
