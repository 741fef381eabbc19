// Ring attention (Liu et al., 2023): sequence-parallel self-attention for any head count.
// Every rank keeps its query block and passes key/value blocks around the ring of the
// sequence-parallel group with point-to-point transfers (Communicator::StartSend/StartRecv),
// merging the partial results with a running log-sum-exp (online softmax). The transfer of the
// next block is started before the current block is computed. Backward passes the key/value
// blocks around again with their gradient accumulators, which arrive back at their owner after
// a full turn; the queries' gradients stay local.
//
// VideoDit::SetSequenceParallel(sp, ulysses) runs it across Ulysses stages (USP); train selects
// it with --sp and --ulysses. Each key block's scores are computed whole (no tiling inside a
// block): [B, H, L/n, L/n] in fp32 at a time, which plan counts.
#ifndef DANCEGRPO_MODELS_DIT_RING_ATTENTION_H_
#define DANCEGRPO_MODELS_DIT_RING_ATTENTION_H_

#include <torch/types.h>

#include <memory>

#include "hpc/comm/communicator.h"
#include "models/dit/attention.h"

namespace dancegrpo::models {

// q, k, v: this rank's sequence block [B, H, L/n, d] (rank i holds positions [i L/n, (i+1) L/n));
// key_mask: [B, L] over the whole sequence (true = attend) or undefined. Computes in fp32
// whatever the dtype (bf16 inputs give bf16 outputs). Returns [B, H, L/n, d]; differentiable
// in q, k and v. Every query needs at least one key it may attend.
class RingAttention : public AttentionKernel {
 public:
  explicit RingAttention(std::shared_ptr<hpc::Communicator> ring) : ring_(std::move(ring)) {}
  torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& key_mask) override;

 private:
  std::shared_ptr<hpc::Communicator> ring_;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_RING_ATTENTION_H_
