#include "models/dit/cpu_attention.h"

#include "models/dit/cpu_ops.h"
#include "models/dit/simd.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace dancegrpo::models {
namespace {

using namespace simd;  // NOLINT: the vector helpers

// ----------------------------------------------------------------------------- BLAS

using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*, const int*);

// The Fortran sgemm_ of the BLAS libtorch was linked against (OpenBLAS with setup.sh), found
// in the process; null where none is exported (a libtorch with MKL linked in statically).
SgemmFn Sgemm() {
  static const SgemmFn fn = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return fn;
}

// Row-major C[m, n] = alpha op(A) op(B) + beta C, through the column-major sgemm_ (C^T = op(B)^T op(A)^T).
// a, b, c point at row-major matrices with row strides lda, ldb, ldc; op(X) = X^T when trans_x.
void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  Sgemm()(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// ----------------------------------------------------------------------------- softmax rows

// One row of scores in place: masked keys (keep[j] == 0) to -inf, then softmax.
DGRPO_CLONES void SoftmaxRow(float* s, int n, const uint8_t* keep) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (keep != nullptr)
    for (int j = 0; j < n; ++j)
      if (!keep[j]) s[j] = neg_inf;
  const int full = n / kLanes * kLanes, tail = n - full;
  V16 m = Splat(neg_inf);
  for (int j = 0; j < full; j += kLanes) {
    const V16 c = Load(s + j);
    m = c > m ? c : m;
  }
  if (tail) {
    const V16 c = LoadPartial(s + full, tail, neg_inf);
    m = c > m ? c : m;
  }
  const V16 mx = Splat(Max(m));
  V16 acc = Splat(0.0f);
  for (int j = 0; j < full; j += kLanes) {
    const V16 e = ExpNonPositive(Load(s + j) - mx);
    acc += e;
    Store(s + j, e);
  }
  if (tail) {
    const V16 e = ExpNonPositive(LoadPartial(s + full, tail, neg_inf) - mx);
    acc += e;
    StorePartial(s + full, e, tail);
  }
  const V16 inv = Splat(1.0f / Sum(acc));
  for (int j = 0; j < full; j += kLanes) Store(s + j, Load(s + j) * inv);
  if (tail) StorePartial(s + full, LoadPartial(s + full, tail, 0.0f) * inv, tail);
}

// The softmax backward of one row, in place in dp: ds = p * (dp - <dp, p>) * scale.
DGRPO_CLONES void SoftmaxBackwardRow(const float* p, float* dp, int n, float scale) {
  const int full = n / kLanes * kLanes, tail = n - full;
  V16 acc = Splat(0.0f);
  for (int j = 0; j < full; j += kLanes) acc += Load(p + j) * Load(dp + j);
  if (tail) acc += LoadPartial(p + full, tail, 0.0f) * LoadPartial(dp + full, tail, 0.0f);
  const V16 dot = Splat(Sum(acc)), s = Splat(scale);
  for (int j = 0; j < full; j += kLanes) Store(dp + j, Load(p + j) * (Load(dp + j) - dot) * s);
  if (tail)
    StorePartial(dp + full, LoadPartial(p + full, tail, 0.0f) * (LoadPartial(dp + full, tail, 0.0f) - dot) * s, tail);
}

DGRPO_CLONES void ExpRun(const float* x, float* out, int64_t n) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) Store(out + j, ExpNonPositive(Load(x + j)));
  if (j < n) StorePartial(out + j, ExpNonPositive(LoadPartial(x + j, static_cast<int>(n - j), 0.0f)), static_cast<int>(n - j));
}

// ----------------------------------------------------------------------------- per (batch, head)

// A [B, H, L, d] operand: the row-major L x d matrix of (b, h) and its row stride.
struct Strided {
  float* data;
  int64_t sb, sh;
  int ld;
  // One row is never stepped over, but the BLAS still checks its stride against the row length.
  explicit Strided(const torch::Tensor& t)
      : data(t.data_ptr<float>()),
        sb(t.stride(0)),
        sh(t.stride(1)),
        ld(static_cast<int>(t.size(2) == 1 ? std::max(t.stride(2), t.size(3)) : t.stride(2))) {}
  float* at(int64_t b, int64_t h) const { return data + b * sb + h * sh; }
};

// Makes t usable as Strided: fp32 with a unit last stride and a row stride of at least d.
torch::Tensor Usable(const torch::Tensor& t) {
  if (t.stride(3) == 1 && (t.size(2) == 1 || t.stride(2) >= t.size(3))) return t;
  return t.contiguous();
}

// q, k, v usable; out [B, H, Lq, d] (strided); probs [B, H, Lq, Lk] contiguous or undefined
// (then scratch is used and nothing is kept).
void Forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask,
             float scale, const torch::Tensor& out, const torch::Tensor& probs) {
  const int64_t B = q.size(0), H = q.size(1);
  const int lq = static_cast<int>(q.size(2)), lk = static_cast<int>(k.size(2)), d = static_cast<int>(q.size(3));
  const Strided Q(q), K(k), V(v), O(out);
  const uint8_t* keep = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
  float* P = probs.defined() ? probs.data_ptr<float>() : nullptr;
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(P == nullptr ? static_cast<size_t>(lq) * lk : 0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / H, h = i % H;
      float* s = P != nullptr ? P + i * lq * lk : scratch.data();
      Gemm(false, true, lq, lk, d, scale, Q.at(b, h), Q.ld, K.at(b, h), K.ld, 0.0f, s, lk);
      for (int r = 0; r < lq; ++r) SoftmaxRow(s + static_cast<int64_t>(r) * lk, lk, keep ? keep + b * lk : nullptr);
      Gemm(false, false, lq, d, lk, 1.0f, s, lk, V.at(b, h), V.ld, 0.0f, O.at(b, h), O.ld);
    }
  });
}

// An empty [B, H, L, d] tensor laid out token-major ([B, L, H, d] memory), as the projections
// on either side of attention read and write it.
torch::Tensor TokenMajor(int64_t B, int64_t H, int64_t L, int64_t d, const torch::TensorOptions& options) {
  return torch::empty({B, L, H, d}, options).transpose(1, 2);
}

// The gradient's layout: that of the input when it is dense (a view of a projection), else token-major.
torch::Tensor GradLike(const torch::Tensor& x) {
  if (x.is_non_overlapping_and_dense() && x.stride(3) == 1) return torch::empty_like(x);
  return TokenMajor(x.size(0), x.size(1), x.size(2), x.size(3), x.options());
}

class CpuAttentionFunction : public torch::autograd::Function<CpuAttentionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in, const torch::Tensor* mask,
                               double scale) {
    // The mask travels as a pointer: an undefined tensor input is refused by autograd's
    // bookkeeping, and the mask takes no gradient.
    const auto q = Usable(q_in), k = Usable(k_in), v = Usable(v_in);
    auto out = TokenMajor(q.size(0), q.size(1), q.size(2), q.size(3), q.options());
    auto probs = torch::empty({q.size(0), q.size(1), q.size(2), k.size(2)}, q.options());
    Forward(q, k, v, *mask, static_cast<float>(scale), out, probs);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const auto g = Usable(grads[0].to(torch::kFloat32));
    auto dq = GradLike(q), dk = GradLike(k), dv = GradLike(v);
    const int64_t B = q.size(0), H = q.size(1);
    const int lq = static_cast<int>(q.size(2)), lk = static_cast<int>(k.size(2)), d = static_cast<int>(q.size(3));
    const Strided Q(q), K(k), V(v), G(g), DQ(dq), DK(dk), DV(dv);
    const float* P = probs.data_ptr<float>();
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> ds(static_cast<size_t>(lq) * lk);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / H, h = i % H;
        const float* p = P + i * lq * lk;
        Gemm(true, false, lk, d, lq, 1.0f, p, lk, G.at(b, h), G.ld, 0.0f, DV.at(b, h), DV.ld);  // dV = P^T dO
        Gemm(false, true, lq, lk, d, 1.0f, G.at(b, h), G.ld, V.at(b, h), V.ld, 0.0f, ds.data(), lk);  // dP = dO V^T
        for (int r = 0; r < lq; ++r)
          SoftmaxBackwardRow(p + static_cast<int64_t>(r) * lk, ds.data() + static_cast<int64_t>(r) * lk, lk, scale);
        Gemm(false, false, lq, d, lk, 1.0f, ds.data(), lk, K.at(b, h), K.ld, 0.0f, DQ.at(b, h), DQ.ld);  // dQ = dS K
        Gemm(true, false, lk, d, lq, 1.0f, ds.data(), lk, Q.at(b, h), Q.ld, 0.0f, DK.at(b, h), DK.ld);  // dK = dS^T Q
      }
    });
    return {dq, dk, dv, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void FastExpNonPositive(const float* x, float* out, int64_t n) { ExpRun(x, out, n); }

bool CpuAttentionApplies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (!FusedCpuKernels() || Sgemm() == nullptr) return false;
  for (const auto* t : {&q, &k, &v})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat32 || t->dim() != 4) return false;
  // Sizes that fit the BLAS's int arguments.
  return q.size(2) < (1 << 30) && k.size(2) < (1 << 30) && q.size(3) < (1 << 30);
}

torch::Tensor CpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& key_mask, double scale) {
  torch::Tensor mask;
  if (key_mask.defined()) mask = key_mask.to(torch::kCPU, torch::kUInt8).contiguous();
  const bool needs_grad =
      torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (needs_grad) return CpuAttentionFunction::apply(q, k, v, &mask, scale);
  // No graph (rollout, evaluation): the scores live in per-thread scratch, nothing is kept.
  const auto qu = Usable(q), ku = Usable(k), vu = Usable(v);
  auto out = TokenMajor(q.size(0), q.size(1), q.size(2), q.size(3), q.options());
  Forward(qu, ku, vu, mask, static_cast<float>(scale), out, torch::Tensor());
  return out;
}

}  // namespace dancegrpo::models
