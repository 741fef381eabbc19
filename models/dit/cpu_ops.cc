#include "models/dit/cpu_ops.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "models/dit/simd.h"

namespace dancegrpo::models {
namespace {

using namespace simd;  // NOLINT: the vector helpers

std::atomic<bool> g_fused{true};

// ----------------------------------------------------------------------------- GELU (tanh)

constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kKappa = 0.044715f;

// From e = exp(-2|u|) (never overflows): 1 + tanh(u) = 2e / (1 + e) for u < 0, 2 / (1 + e)
// otherwise, and 1 - tanh(u)^2 = 4e / (1 + e)^2. Written so, 1 + tanh keeps its precision in
// the negative tail where tanh is near -1 (libtorch's 1 + tanh(u) cancels there).
DGRPO_INLINE void OnePlusTanh(V16 u, V16* one_plus_t, V16* one_minus_t2) {
  const auto negative = u < 0;
  const V16 e = ExpNonPositive(Splat(-2.0f) * (negative ? -u : u));
  const V16 inv = Splat(1.0f) / (Splat(1.0f) + e);
  *one_plus_t = Splat(2.0f) * (negative ? e * inv : inv);
  *one_minus_t2 = Splat(4.0f) * e * inv * inv;
}

DGRPO_INLINE V16 GeluOf(V16 x) {
  V16 p, d;
  OnePlusTanh(Splat(kBeta) * (x + Splat(kKappa) * x * x * x), &p, &d);
  return Splat(0.5f) * x * p;
}

// d/dx: 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2).
DGRPO_INLINE V16 GeluGradOf(V16 x, V16 g) {
  V16 p, d;
  OnePlusTanh(Splat(kBeta) * (x + Splat(kKappa) * x * x * x), &p, &d);
  const V16 du = Splat(kBeta) * (Splat(1.0f) + Splat(3.0f * kKappa) * x * x);
  return g * (Splat(0.5f) * p + Splat(0.5f) * x * d * du);
}

DGRPO_CLONES void GeluForwardRun(const float* x, float* y, int64_t n) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) Store(y + j, GeluOf(Load(x + j)));
  if (j < n) {
    const int tail = static_cast<int>(n - j);
    StorePartial(y + j, GeluOf(LoadPartial(x + j, tail, 0.0f)), tail);
  }
}

DGRPO_CLONES void GeluBackwardRun(const float* x, const float* g, float* dx, int64_t n) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) Store(dx + j, GeluGradOf(Load(x + j), Load(g + j)));
  if (j < n) {
    const int tail = static_cast<int>(n - j);
    StorePartial(dx + j, GeluGradOf(LoadPartial(x + j, tail, 0.0f), LoadPartial(g + j, tail, 0.0f)), tail);
  }
}

constexpr int64_t kGrain = 16384;  // elements a task

torch::Tensor GeluForward(const torch::Tensor& x) {
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) { GeluForwardRun(xp + b, yp + b, e - b); });
  return y;
}

class GeluTanhFunction : public torch::autograd::Function<GeluTanhFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in) {
    const auto x = x_in.contiguous();
    ctx->save_for_backward({x});
    return GeluForward(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const auto g = grads[0].to(torch::kFloat32).contiguous();
    auto dx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain,
                     [&](int64_t b, int64_t e) { GeluBackwardRun(xp + b, gp + b, dp + b, e - b); });
    return {dx};
  }
};

// ----------------------------------------------------------------------------- RMSNorm

DGRPO_INLINE float SumSquares(const float* x, int64_t d) {
  V16 acc = Splat(0.0f);
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    const V16 v = Load(x + j);
    acc += v * v;
  }
  if (j < d) {
    const V16 v = LoadPartial(x + j, static_cast<int>(d - j), 0.0f);
    acc += v * v;
  }
  return Sum(acc);
}

// y = x * rstd * w a row; rstd[r] = 1 / sqrt(mean(x^2) + eps) kept for backward.
DGRPO_CLONES void RmsNormRows(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t d,
                              float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    const float rs = 1.0f / std::sqrt(SumSquares(xr, d) / static_cast<float>(d) + eps);
    rstd[r] = rs;
    const V16 s = Splat(rs);
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes) Store(yr + j, Load(xr + j) * s * Load(w + j));
    if (j < d) {
      const int tail = static_cast<int>(d - j);
      StorePartial(yr + j, LoadPartial(xr + j, tail, 0.0f) * s * LoadPartial(w + j, tail, 0.0f), tail);
    }
  }
}

// dx = rstd g w - x rstd^3 <g w, x> / d a row.
DGRPO_CLONES void RmsNormBackwardRows(const float* x, const float* w, const float* rstd, const float* g, float* dx,
                                      int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * d, *gr = g + r * d;
    float* dr = dx + r * d;
    V16 acc = Splat(0.0f);
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes) acc += Load(gr + j) * Load(w + j) * Load(xr + j);
    const int tail = static_cast<int>(d - j);
    if (tail)
      acc += LoadPartial(gr + j, tail, 0.0f) * LoadPartial(w + j, tail, 0.0f) * LoadPartial(xr + j, tail, 0.0f);
    const float rs = rstd[r];
    const V16 a = Splat(rs), c = Splat(rs * rs * rs * Sum(acc) / static_cast<float>(d));
    for (j = 0; j + kLanes <= d; j += kLanes) Store(dr + j, a * Load(gr + j) * Load(w + j) - c * Load(xr + j));
    if (tail)
      StorePartial(dr + j,
                   a * LoadPartial(gr + j, tail, 0.0f) * LoadPartial(w + j, tail, 0.0f) - c * LoadPartial(xr + j, tail, 0.0f),
                   tail);
  }
}

// acc += g x rstd over rows (RMSNorm's weight gradient, one chunk of rows).
DGRPO_CLONES void AddRmsNormWeightTerms(const float* x, const float* rstd, const float* g, float* acc, int64_t rows,
                                        int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * d, *gr = g + r * d;
    const V16 s = Splat(rstd[r]);
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes) Store(acc + j, Load(acc + j) + Load(gr + j) * Load(xr + j) * s);
    if (j < d) {
      const int tail = static_cast<int>(d - j);
      StorePartial(acc + j,
                   LoadPartial(acc + j, tail, 0.0f) + LoadPartial(gr + j, tail, 0.0f) * LoadPartial(xr + j, tail, 0.0f) * s,
                   tail);
    }
  }
}

// out [width] = a sum over rows of per-row terms, which add_rows(begin, end, acc) adds into acc.
// Rows go in fixed chunks of 64, summed in parallel, then the chunk sums in chunk order: the
// same bits at any thread count, and shorter fp32 sums than one running total.
template <typename AddRows>
void ChunkedRowSum(int64_t rows, int64_t width, float* out, const AddRows& add_rows) {
  constexpr int64_t kChunk = 64;
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  std::vector<float> partial(static_cast<size_t>(chunks * width), 0.0f);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      add_rows(c * kChunk, std::min(rows, (c + 1) * kChunk), partial.data() + c * width);
  });
  std::fill(out, out + width, 0.0f);
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t j = 0; j < width; ++j) out[j] += partial[c * width + j];
}

constexpr int64_t kRowGrain = 64;

// y and rstd [rows] for contiguous x [..., d].
std::pair<torch::Tensor, torch::Tensor> RmsNormForward(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  auto y = torch::empty_like(x);
  auto rstd = torch::empty({rows}, x.options());
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
  float *yp = y.data_ptr<float>(), *rp = rstd.data_ptr<float>();
  at::parallel_for(0, rows, kRowGrain, [&](int64_t b, int64_t e) {
    RmsNormRows(xp + b * d, wp, yp + b * d, rp + b, e - b, d, static_cast<float>(eps));
  });
  return {y, rstd};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& w_in, double eps) {
    const auto x = x_in.contiguous(), w = w_in.contiguous();
    auto [y, rstd] = RmsNormForward(x, w, eps);
    ctx->save_for_backward({x, w, rstd});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &rstd = saved[2];
    const auto g = grads[0].to(torch::kFloat32).contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    auto dx = torch::empty_like(x);
    auto dw = torch::empty_like(w);
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *rp = rstd.data_ptr<float>(),
                *gp = g.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    at::parallel_for(0, rows, kRowGrain, [&](int64_t b, int64_t e) {
      RmsNormBackwardRows(xp + b * d, wp, rp + b, gp + b * d, dxp + b * d, e - b, d);
    });
    ChunkedRowSum(rows, d, dw.data_ptr<float>(), [&](int64_t b, int64_t e, float* acc) {
      AddRmsNormWeightTerms(xp + b * d, rp + b, gp + b * d, acc, e - b, d);
    });
    return {dx, dw, torch::Tensor()};
  }
};

// ----------------------------------------------------------------------------- adaLN

DGRPO_INLINE float SumOf(const float* x, int64_t d) {
  V16 acc = Splat(0.0f);
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) acc += Load(x + j);
  if (j < d) acc += LoadPartial(x + j, static_cast<int>(d - j), 0.0f);
  return Sum(acc);
}

DGRPO_INLINE float SumSquaredDeviations(const float* x, float mean, int64_t d) {
  const V16 m = Splat(mean);
  V16 acc = Splat(0.0f);
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    const V16 v = Load(x + j) - m;
    acc += v * v;
  }
  if (j < d) {
    const V16 v = LoadPartial(x + j, static_cast<int>(d - j), mean) - m;
    acc += v * v;
  }
  return Sum(acc);
}

// y = (x - mean) rstd (1 + scale) + shift for the rows of one sample (scale and shift [d]);
// mean and rstd (two passes: the variance of the deviations) kept for backward.
DGRPO_CLONES void LayerNormModulateRows(const float* x, const float* shift, const float* scale, float* y,
                                        float* mean, float* rstd, int64_t rows, int64_t d, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    const float mu = SumOf(xr, d) / static_cast<float>(d);
    const float rs = 1.0f / std::sqrt(SumSquaredDeviations(xr, mu, d) / static_cast<float>(d) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    const V16 m = Splat(mu), s = Splat(rs), one = Splat(1.0f);
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes)
      Store(yr + j, (Load(xr + j) - m) * s * (one + Load(scale + j)) + Load(shift + j));
    if (j < d) {
      const int tail = static_cast<int>(d - j);
      StorePartial(yr + j,
                   (LoadPartial(xr + j, tail, 0.0f) - m) * s * (one + LoadPartial(scale + j, tail, 0.0f)) +
                       LoadPartial(shift + j, tail, 0.0f),
                   tail);
    }
  }
}

// Rows of one sample: dx = rstd (h - mean(h) - xhat mean(h xhat)) with h = g (1 + scale) and
// xhat = (x - mean) rstd.
DGRPO_CLONES void LayerNormModulateBackwardRows(const float* x, const float* scale, const float* mean,
                                                const float* rstd, const float* g, float* dx, int64_t rows, int64_t d) {
  const V16 one = Splat(1.0f);
  const int64_t full = d - d % kLanes;
  const int tail = static_cast<int>(d - full);
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * d, *gr = g + r * d;
    float* dr = dx + r * d;
    const V16 m = Splat(mean[r]), s = Splat(rstd[r]);
    V16 sum_h = Splat(0.0f), sum_hx = Splat(0.0f);
    for (int64_t j = 0; j < full; j += kLanes) {
      const V16 xhat = (Load(xr + j) - m) * s, h = Load(gr + j) * (one + Load(scale + j));
      sum_h += h;
      sum_hx += h * xhat;
    }
    if (tail) {
      const V16 xhat = (LoadPartial(xr + full, tail, 0.0f) - m) * s,
                h = LoadPartial(gr + full, tail, 0.0f) * (one + LoadPartial(scale + full, tail, 0.0f));
      sum_h += h;
      sum_hx += h * xhat;
    }
    const V16 a = Splat(Sum(sum_h) / static_cast<float>(d)), c = Splat(Sum(sum_hx) / static_cast<float>(d));
    for (int64_t j = 0; j < full; j += kLanes) {
      const V16 xhat = (Load(xr + j) - m) * s, h = Load(gr + j) * (one + Load(scale + j));
      Store(dr + j, s * (h - a - xhat * c));
    }
    if (tail) {
      const V16 xhat = (LoadPartial(xr + full, tail, 0.0f) - m) * s,
                h = LoadPartial(gr + full, tail, 0.0f) * (one + LoadPartial(scale + full, tail, 0.0f));
      StorePartial(dr + full, s * (h - a - xhat * c), tail);
    }
  }
}

// dshift += g and dscale += g xhat over rows (one chunk of one sample's rows).
DGRPO_CLONES void AddModulateTerms(const float* x, const float* mean, const float* rstd, const float* g,
                                   float* dshift, float* dscale, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * d, *gr = g + r * d;
    const V16 m = Splat(mean[r]), s = Splat(rstd[r]);
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes) {
      const V16 gv = Load(gr + j);
      Store(dshift + j, Load(dshift + j) + gv);
      Store(dscale + j, Load(dscale + j) + gv * (Load(xr + j) - m) * s);
    }
    if (j < d) {
      const int tail = static_cast<int>(d - j);
      const V16 gv = LoadPartial(gr + j, tail, 0.0f);
      StorePartial(dshift + j, LoadPartial(dshift + j, tail, 0.0f) + gv, tail);
      StorePartial(dscale + j, LoadPartial(dscale + j, tail, 0.0f) + gv * (LoadPartial(xr + j, tail, 0.0f) - m) * s,
                   tail);
    }
  }
}

struct LayerNormModulateOut {
  torch::Tensor y, mean, rstd;
};

// x [B, L, d] contiguous, shift and scale [B, d] contiguous; one sample a task.
LayerNormModulateOut LayerNormModulateForward(const torch::Tensor& x, const torch::Tensor& shift,
                                              const torch::Tensor& scale, double eps) {
  const int64_t batch = x.size(0), rows = x.size(1), d = x.size(2);
  LayerNormModulateOut out{torch::empty_like(x), torch::empty({batch, rows}, x.options()),
                           torch::empty({batch, rows}, x.options())};
  const float *xp = x.data_ptr<float>(), *sh = shift.data_ptr<float>(), *sc = scale.data_ptr<float>();
  float *yp = out.y.data_ptr<float>(), *mp = out.mean.data_ptr<float>(), *rp = out.rstd.data_ptr<float>();
  at::parallel_for(0, batch * rows, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {  // a run of rows within one sample
      const int64_t b = r / rows, stop = std::min(end, (b + 1) * rows);
      LayerNormModulateRows(xp + r * d, sh + b * d, sc + b * d, yp + r * d, mp + r, rp + r, stop - r, d,
                            static_cast<float>(eps));
      r = stop;
    }
  });
  return out;
}

// [B, 1, d] (a chunk of the modulation) as contiguous [B, d].
torch::Tensor PerSample(const torch::Tensor& t) { return t.reshape({t.size(0), t.size(-1)}).contiguous(); }

class LayerNormModulateFunction : public torch::autograd::Function<LayerNormModulateFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& shift_in, const torch::Tensor& scale_in, double eps) {
    const auto x = x_in.contiguous(), shift = PerSample(shift_in), scale = PerSample(scale_in);
    auto out = LayerNormModulateForward(x, shift, scale, eps);
    ctx->save_for_backward({x, scale, out.mean, out.rstd});
    return out.y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &scale = saved[1], &mean = saved[2], &rstd = saved[3];
    const auto g = grads[0].to(torch::kFloat32).contiguous();
    const int64_t batch = x.size(0), rows = x.size(1), d = x.size(2);
    auto dx = torch::empty_like(x);
    auto dshift = torch::empty({batch, 1, d}, x.options()), dscale = torch::empty({batch, 1, d}, x.options());
    const float *xp = x.data_ptr<float>(), *sc = scale.data_ptr<float>(), *mp = mean.data_ptr<float>(),
                *rp = rstd.data_ptr<float>(), *gp = g.data_ptr<float>();
    float *dxp = dx.data_ptr<float>(), *dsh = dshift.data_ptr<float>(), *dsc = dscale.data_ptr<float>();
    at::parallel_for(0, batch * rows, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end;) {  // a run of rows within one sample
        const int64_t b = r / rows, stop = std::min(end, (b + 1) * rows);
        LayerNormModulateBackwardRows(xp + r * d, sc + b * d, mp + r, rp + r, gp + r * d, dxp + r * d, stop - r, d);
        r = stop;
      }
    });
    std::vector<float> sums(static_cast<size_t>(2 * d));  // dshift, dscale of one sample
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t first = b * rows;
      ChunkedRowSum(rows, 2 * d, sums.data(), [&](int64_t begin, int64_t end, float* acc) {
        AddModulateTerms(xp + (first + begin) * d, mp + first + begin, rp + first + begin, gp + (first + begin) * d,
                         acc, acc + d, end - begin, d);
      });
      std::copy(sums.begin(), sums.begin() + d, dsh + b * d);
      std::copy(sums.begin() + d, sums.end(), dsc + b * d);
    }
    return {dx, dshift, dscale, torch::Tensor()};
  }
};

// ----------------------------------------------------------------------------- RoPE

// One (b, h, l) row of d: rotate the pairs (x[2j], x[2j+1]) by the angle whose cos and sin are
// c[j] and s[j]; inverse = rotate the other way (backward).
template <bool kInverse>
void RotatePairs(const float* x, const float* c, const float* s, float* y, int64_t pairs) {
  for (int64_t j = 0; j < pairs; ++j) {
    const float a = x[2 * j], b = x[2 * j + 1], cj = c[j], sj = kInverse ? -s[j] : s[j];
    y[2 * j] = a * cj - b * sj;
    y[2 * j + 1] = a * sj + b * cj;
  }
}

// token-major [B, L, H, d] <-> head-major [B, H, L, d], rotating each row on the way.
template <bool kInverse>
void RopeRows(const float* in, const float* cos, const float* sin, float* out, int64_t batch, int64_t len,
              int64_t heads, int64_t d) {
  const int64_t pairs = d / 2;
  at::parallel_for(0, batch * heads * len, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {  // r indexes head-major rows (b, h, l)
      const int64_t l = r % len, h = (r / len) % heads, b = r / (len * heads);
      const int64_t token_major = ((b * len + l) * heads + h) * d, head_major = r * d;
      if (kInverse)
        RotatePairs<true>(in + head_major, cos + l * pairs, sin + l * pairs, out + token_major, pairs);
      else
        RotatePairs<false>(in + token_major, cos + l * pairs, sin + l * pairs, out + head_major, pairs);
    }
  });
}

torch::Tensor RopeForward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t b = x.size(0), l = x.size(1), h = x.size(2), d = x.size(3);
  auto y = torch::empty({b, h, l, d}, x.options());
  RopeRows<false>(x.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), y.data_ptr<float>(), b, l, h, d);
  return y;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return RopeForward(x_in.contiguous(), cos, sin);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &cos = saved[0], &sin = saved[1];
    const auto g = grads[0].to(torch::kFloat32).contiguous();
    const int64_t b = g.size(0), h = g.size(1), l = g.size(2), d = g.size(3);
    auto dx = torch::empty({b, l, h, d}, g.options());
    RopeRows<true>(g.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), dx.data_ptr<float>(), b, l, h,
                   d);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

bool Differentiated(const torch::Tensor& t) { return t.requires_grad(); }

}  // namespace

void SetFusedCpuKernels(bool on) { g_fused = on; }
bool FusedCpuKernels() { return g_fused; }

bool CpuOpsApply(const torch::Tensor& x) {
  return g_fused && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.numel() > 0;
}

torch::Tensor CpuGeluTanh(const torch::Tensor& x) {
  if (torch::GradMode::is_enabled() && Differentiated(x)) return GeluTanhFunction::apply(x);
  return GeluForward(x.contiguous());
}

torch::Tensor CpuRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1) && weight.scalar_type() == torch::kFloat32 &&
                  weight.device().is_cpu(),
              "CpuRmsNorm: the weight must be fp32 [", x.size(-1), "] on the CPU");
  if (torch::GradMode::is_enabled() && (Differentiated(x) || Differentiated(weight)))
    return RmsNormFunction::apply(x, weight, eps);
  return RmsNormForward(x.contiguous(), weight.contiguous(), eps).first;
}

torch::Tensor CpuLayerNormModulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                                  double eps) {
  TORCH_CHECK(x.dim() == 3, "CpuLayerNormModulate: x must be [B, L, D], got ", x.sizes());
  const std::vector<int64_t> per_sample = {x.size(0), 1, x.size(2)};
  for (const auto* t : {&shift, &scale})
    TORCH_CHECK(t->sizes() == per_sample && t->scalar_type() == torch::kFloat32 && t->device().is_cpu(),
                "CpuLayerNormModulate: shift and scale must be fp32 ", per_sample, " on the CPU, got ", t->sizes());
  if (torch::GradMode::is_enabled() && (Differentiated(x) || Differentiated(shift) || Differentiated(scale)))
    return LayerNormModulateFunction::apply(x, shift, scale, eps);
  return LayerNormModulateForward(x.contiguous(), PerSample(shift), PerSample(scale), eps).y;
}

torch::Tensor CpuRopeHeadMajor(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "CpuRopeHeadMajor: x must be [B, L, H, d] with d even, got ",
              x.sizes());
  const std::vector<int64_t> table = {x.size(1), x.size(3) / 2};
  for (const auto* t : {&cos, &sin})
    TORCH_CHECK(t->sizes() == table && t->scalar_type() == torch::kFloat32 && t->device().is_cpu() &&
                    t->is_contiguous(),
                "CpuRopeHeadMajor: cos and sin must be contiguous fp32 ", table, " on the CPU, got ", t->sizes());
  if (torch::GradMode::is_enabled() && Differentiated(x)) return RopeFunction::apply(x, cos, sin);
  return RopeForward(x.contiguous(), cos, sin);
}

}  // namespace dancegrpo::models
