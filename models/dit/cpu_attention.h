// Attention for small heads on the CPU, fused: softmax(q k^T * scale + mask) v and its backward,
// one (batch, head) at a time, with the GEMMs called straight into the BLAS that libtorch
// uses (its Fortran sgemm_) on strided matrices, and the softmax (forward and backward) in one
// vectorised pass per row with a polynomial exp.
//
// Why: libtorch 1.13 has no fused attention on the CPU. Its bmm loops over the batch with
// three tensor selects a matrix, its softmax runs ~1.6 ns an element through Sleef's AVX2 exp,
// and the scores are scaled, masked and transposed by separate kernels; at the shapes demo's
// size (100 tokens, heads of 16) that is most of attention's time
// (docs/experiments/2026-12-01-grpo-twin.md). Here q, k and v are read where they lie
// (any strides with a contiguous last dimension: no transposed-view copies), and the output
// is written token-major ([B, Lq, H, d], returned as its [B, H, Lq, d] view), so the output
// projection reads it without a copy.
//
// Results equal the unfused formula to fp32 rounding (models/dit:cpu_attention_test).
// libtorch 2.x uses scaled_dot_product_attention instead (models/dit/dit.cc).
#ifndef DANCEGRPO_MODELS_DIT_CPU_ATTENTION_H_
#define DANCEGRPO_MODELS_DIT_CPU_ATTENTION_H_

#include <torch/types.h>

namespace dancegrpo::models {

// Whether CpuAttention can take these inputs: fp32 CPU tensors [B, H, L, d], a BLAS sgemm_
// in the process, and the fused kernels on (SetFusedCpuKernels, cpu_ops.h).
bool CpuAttentionApplies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// softmax(q k^T * scale, masked) v, differentiable in q, k and v. key_mask: [B, Lk] (true =
// attend) or undefined; every query needs at least one key. Returns [B, H, Lq, d] (a view of
// a token-major [B, Lq, H, d] tensor).
torch::Tensor CpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& key_mask, double scale);

// exp(x) for x <= 0 (the softmax's shifted scores), within 2 ulp of std::exp; 0 below -87.
// Exposed for the test.
void FastExpNonPositive(const float* x, float* out, int64_t n);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_CPU_ATTENTION_H_
