// Attention as a replaceable kernel. The DiT's self-attention calls an AttentionKernel on
// per-head tensors; the default computes it locally. hpc/seqpar supplies a Ulysses
// (sequence-parallel) kernel that swaps sequence shards for head shards with an
// all-to-all around a local kernel, without the model knowing.
#ifndef DANCEGRPO_MODELS_DIT_ATTENTION_H_
#define DANCEGRPO_MODELS_DIT_ATTENTION_H_

#include <torch/types.h>

#include <memory>

#include "hpc/comm/communicator.h"

namespace dancegrpo::models {

class AttentionKernel {
 public:
  virtual ~AttentionKernel() = default;
  // q: [B, H, Lq, d]; k, v: [B, H, Lk, d]; key_mask: [B, Lk] bool (true = attend) or
  // undefined. Returns [B, H, Lq, d]. Every query must have at least one key to attend.
  virtual torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& key_mask) = 0;
};

// softmax(q k^T / sqrt(d)) v, through scaled_dot_product_attention on libtorch 2.x.
class LocalAttention : public AttentionKernel {
 public:
  torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& key_mask) override;
};

// Ulysses sequence-parallel self-attention: q, k, v arrive as this rank's sequence shard
// with all heads, [B, H, L/sp, d]; an all-to-all turns them into all of the sequence for
// H/sp heads, a local kernel attends, and a second all-to-all restores the sequence shard.
// With an `inner` kernel (USP: ring attention across the Ulysses groups) the all-to-all
// gathers the group's part of the sequence and `inner` attends over the rest.
class UlyssesAttention : public AttentionKernel {
 public:
  explicit UlyssesAttention(std::shared_ptr<hpc::Communicator> sp,
                            std::shared_ptr<AttentionKernel> inner = std::make_shared<LocalAttention>())
      : sp_(std::move(sp)), inner_(std::move(inner)) {}
  torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& key_mask) override;

 private:
  std::shared_ptr<hpc::Communicator> sp_;
  std::shared_ptr<AttentionKernel> inner_;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_ATTENTION_H_
