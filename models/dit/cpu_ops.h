// Fused fp32 CPU kernels for the DiT's pointwise and row operations, with their backward:
//   CpuGeluTanh: GELU with the tanh approximation (the FFN's), one pass instead of libtorch
//     1.13's Sleef-tanh kernel (~1.8 ns an element here);
//   CpuRmsNorm: x * rsqrt(mean(x^2) + eps) * weight over the last dimension, one pass a row
//     instead of six kernels (and eleven in backward);
//   CpuLayerNormModulate: adaLN's layer_norm(x) * (1 + scale) + shift, one kernel instead of
//     LayerNorm, an add and an addcmul (forward) and their backward in one pass a row;
//   CpuRopeHeadMajor: Wan's rotary embedding, read token-major and written head-major in one
//     pass (libtorch: a transposed copy, six pointwise kernels and a stack).
// All are vectorised with the helpers of simd.h and equal libtorch's ops to fp32 rounding
// (models/dit:cpu_ops_test). The DiT uses them when CpuOpsApply(x) holds, else libtorch's
// ops (bf16, CUDA, or the kernels switched off).
#ifndef DANCEGRPO_MODELS_DIT_CPU_OPS_H_
#define DANCEGRPO_MODELS_DIT_CPU_OPS_H_

#include <torch/types.h>

namespace dancegrpo::models {

// The fused CPU kernels (these and CpuAttention) are on by default; off, the DiT runs
// libtorch's unfused ops: the before rows of bench/dit_bench (--fused_kernels=false) and the
// equivalence tests. Process-wide.
void SetFusedCpuKernels(bool on);
bool FusedCpuKernels();

// x is an fp32 CPU tensor and the fused kernels are on.
bool CpuOpsApply(const torch::Tensor& x);

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), differentiable.
torch::Tensor CpuGeluTanh(const torch::Tensor& x);

// x * rsqrt(mean(x^2, -1) + eps) * weight, differentiable in x and weight ([D]).
torch::Tensor CpuRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// layer_norm(x, no affine) * (1 + scale) + shift for x [B, L, D] and per-sample shift and scale
// [B, 1, D] (chunks of the adaLN modulation), differentiable in all three.
torch::Tensor CpuLayerNormModulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                                  double eps);

// Rotates the pairs (x[..., 2j], x[..., 2j+1]) of x [B, L, H, d] by the angles whose cos and sin
// are [L, d/2] (RopeTables) and returns them head-major, [B, H, L, d] contiguous;
// differentiable in x.
torch::Tensor CpuRopeHeadMajor(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_CPU_OPS_H_
