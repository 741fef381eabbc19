#include "models/dit/cpu_ops.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dancegrpo::models {
namespace {

double MaxRelErr(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max() / want.abs().max().clamp_min(1e-30))
      .item<double>();
}

// Elementwise: |got - want| <= rel |want| + abs.
bool Close(const torch::Tensor& got, const torch::Tensor& want, double rel, double abs) {
  auto g = got.to(torch::kFloat64), w = want.to(torch::kFloat64);
  return ((g - w).abs() <= w.abs() * rel + abs).all().item<bool>();
}

// The element that exceeds |got - want| <= rel |want| + abs the most: "x = ..., got ..., want ...".
std::string WorstOf(const torch::Tensor& x, const torch::Tensor& got, const torch::Tensor& want, double rel, double abs) {
  auto g = got.to(torch::kFloat64), w = want.to(torch::kFloat64);
  auto excess = (g - w).abs() - (w.abs() * rel + abs);
  const int64_t i = excess.argmax().item<int64_t>();
  return "x = " + std::to_string(x[i].item<double>()) + ", got " + std::to_string(g[i].item<double>()) + ", want " +
         std::to_string(w[i].item<double>()) + ", relative error " +
         std::to_string(((g[i] - w[i]).abs() / w[i].abs().clamp_min(1e-300)).item<double>());
}

// Values over GELU's whole range: the tails (tanh saturates), around 0, and an odd length.
torch::Tensor GeluInputs() {
  torch::manual_seed(1);
  auto x = torch::cat({torch::randn({4097}) * 3, torch::linspace(-12, 12, 2001), torch::tensor({0.0f, -0.0f, 1e-6f, -1e-6f, 50.0f, -50.0f})});
  return x;
}

TEST(CpuGeluTanh, EqualsTheFormulaInFloat64ToFp32Rounding) {
  auto x = GeluInputs();
  auto x64 = x.to(torch::kFloat64);
  // 0.5 x (1 + tanh(u)) = x sigmoid(2u): the same function, without float64's own cancellation
  // of 1 + tanh(u) in the negative tail.
  auto want = x64 * torch::sigmoid(2 * 0.7978845608028654 * (x64 + 0.044715 * x64.pow(3)));
  auto got = CpuGeluTanh(x);
  // Within a few ulp where activations live; in the far negative tail the fp32 rounding of
  // u = sqrt(2/pi)(x + 0.044715 x^3) itself is amplified by exp(-2|u|) (|x| = 9: ~7e-6), as
  // in any fp32 evaluation of the formula. Below 1e-30 the kernel may flush to 0.
  const auto body = x.abs() <= 4;
  // (2e-6: near |x| = 4 the rounding of u alone is |2u| x 2^-24 ~ 4e-7 relative before the
  // exp polynomial's own; the AVX2 clone reached 1.0e-6 at x = -3.75 on an AMD EPYC.)
  EXPECT_TRUE(Close(got.masked_select(body), want.masked_select(body), 2e-6, 0))
      << WorstOf(x.masked_select(body), got.masked_select(body), want.masked_select(body), 2e-6, 0);
  EXPECT_TRUE(Close(got, want, 2e-5, 1e-30)) << MaxRelErr(got, want);
  // And libtorch's own op, to its fp32 rounding: its 1 + tanh(u) cancels in the negative tail
  // (an absolute error up to |x| * 2^-24 there; the fused kernel stays within 1e-6 relative).
  EXPECT_TRUE(Close(got, torch::gelu(x, "tanh"), 1e-6, 1e-6));
}

TEST(CpuGeluTanh, GradientEqualsAutogradInFloat64) {
  auto x = GeluInputs().requires_grad_();
  auto g = torch::randn(x.sizes());
  auto got = torch::autograd::grad({CpuGeluTanh(x)}, {x}, {g})[0];
  auto x64 = x.detach().to(torch::kFloat64).requires_grad_();
  auto want = torch::autograd::grad({x64 * torch::sigmoid(2 * 0.7978845608028654 * (x64 + 0.044715 * x64.pow(3)))},
                                    {x64}, {g.to(torch::kFloat64)})[0];
  EXPECT_TRUE(Close(got, want, 2e-6, 1e-7)) << MaxRelErr(got, want);
}

TEST(CpuGeluTanh, KeepsShapeAndReadsNonContiguousInput) {
  auto x = torch::randn({6, 5, 7}).transpose(0, 2);
  auto got = CpuGeluTanh(x);
  EXPECT_EQ(got.sizes(), x.sizes());
  EXPECT_TRUE(Close(got, torch::gelu(x, "tanh"), 1e-6, 1e-6));
}

TEST(CpuRmsNorm, EqualsTheFormulaAndItsGradients) {
  torch::manual_seed(2);
  for (int64_t d : {64, 16, 37, 5}) {
    auto x = (torch::randn({3, 11, d}) * 2 + 0.5).requires_grad_();
    auto w = (torch::rand({d}) + 0.5).requires_grad_();
    auto g = torch::randn({3, 11, d});
    auto y = CpuRmsNorm(x, w, 1e-6);
    auto got = torch::autograd::grad({y}, {x, w}, {g});
    auto x64 = x.detach().to(torch::kFloat64).requires_grad_(), w64 = w.detach().to(torch::kFloat64).requires_grad_();
    auto y64 = x64 * torch::rsqrt(x64.pow(2).mean(-1, true) + 1e-6) * w64;
    auto want = torch::autograd::grad({y64}, {x64, w64}, {g.to(torch::kFloat64)});
    EXPECT_LT(MaxRelErr(y, y64), 1e-6) << "d = " << d;
    EXPECT_LT(MaxRelErr(got[0], want[0]), 1e-5) << "dx, d = " << d;
    EXPECT_LT(MaxRelErr(got[1], want[1]), 1e-5) << "dw, d = " << d;
  }
}

TEST(CpuRmsNorm, WithoutAGraphGivesTheSameBitsAndAFrozenWeightStillTrainsX) {
  torch::manual_seed(3);
  auto x = torch::randn({4, 9, 64}), w = torch::rand({64});
  torch::Tensor plain;
  {
    torch::NoGradGuard no_grad;
    plain = CpuRmsNorm(x, w, 1e-6);
  }
  auto xg = x.clone().requires_grad_();
  auto y = CpuRmsNorm(xg, w, 1e-6);  // w frozen (as under LoRA)
  EXPECT_TRUE(torch::equal(y.detach(), plain));
  y.sum().backward();
  ASSERT_TRUE(xg.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_THROW(CpuRmsNorm(x, torch::rand({63}), 1e-6), c10::Error);
}

TEST(CpuLayerNormModulate, EqualsTheFormulaAndItsGradients) {
  torch::manual_seed(4);
  for (int64_t d : {64, 16, 37, 5}) {
    // Rows far from zero mean (as residual streams drift) and the modulation as a chunk view.
    auto x = (torch::randn({3, 11, d}) * 2 + 3).requires_grad_();
    auto mod = (torch::randn({3, 2, d}) * 0.5).requires_grad_();
    auto e = mod.chunk(2, 1);
    auto g = torch::randn({3, 11, d});
    auto y = CpuLayerNormModulate(x, e[0], e[1], 1e-6);
    auto got = torch::autograd::grad({y}, {x, mod}, {g});
    auto x64 = x.detach().to(torch::kFloat64).requires_grad_(), m64 = mod.detach().to(torch::kFloat64).requires_grad_();
    auto e64 = m64.chunk(2, 1);
    auto mean = x64.mean(-1, true), var = (x64 - mean).pow(2).mean(-1, true);
    auto y64 = (x64 - mean) * torch::rsqrt(var + 1e-6) * (1 + e64[1]) + e64[0];
    auto want = torch::autograd::grad({y64}, {x64, m64}, {g.to(torch::kFloat64)});
    EXPECT_LT(MaxRelErr(y, y64), 1e-5) << "d = " << d;
    EXPECT_LT(MaxRelErr(got[0], want[0]), 1e-4) << "dx, d = " << d;
    EXPECT_LT(MaxRelErr(got[1], want[1]), 1e-5) << "dshift, dscale, d = " << d;
  }
}

TEST(CpuLayerNormModulate, EqualsLibtorchsLayerNormAndAddcmulToFp32Rounding) {
  torch::manual_seed(5);
  auto x = torch::randn({2, 300, 64}) + 1, shift = torch::randn({2, 1, 64}), scale = torch::randn({2, 1, 64}) * 0.3;
  auto want = torch::addcmul(shift, torch::layer_norm(x, {64}, {}, {}, 1e-6), 1 + scale);
  EXPECT_TRUE(Close(CpuLayerNormModulate(x, shift, scale, 1e-6), want, 1e-5, 1e-5));
}

TEST(CpuLayerNormModulate, WithoutAGraphGivesTheSameBitsAndRefusesOtherShapes) {
  torch::manual_seed(6);
  auto x = torch::randn({4, 9, 64}), shift = torch::randn({4, 1, 64}), scale = torch::randn({4, 1, 64});
  torch::Tensor plain;
  {
    torch::NoGradGuard no_grad;
    plain = CpuLayerNormModulate(x, shift, scale, 1e-6);
  }
  auto xg = x.clone().requires_grad_();
  auto y = CpuLayerNormModulate(xg, shift, scale, 1e-6);  // shift and scale frozen
  EXPECT_TRUE(torch::equal(y.detach(), plain));
  y.sum().backward();
  ASSERT_TRUE(xg.grad().defined());
  EXPECT_THROW(CpuLayerNormModulate(x, torch::randn({4, 9, 64}), scale, 1e-6), c10::Error);  // per token
  EXPECT_THROW(CpuLayerNormModulate(x[0], shift[0], scale[0], 1e-6), c10::Error);             // not [B, L, D]
}

TEST(CpuRopeHeadMajor, EqualsTheRotationInFloat64AndItsGradient) {
  torch::manual_seed(7);
  const int64_t B = 2, L = 13, H = 3;
  for (int64_t d : {16, 6, 64}) {
    auto theta = torch::rand({L, d / 2}) * 6;
    auto cos = torch::cos(theta), sin = torch::sin(theta);
    // q as the attention module makes it: a [B, L, H, d] view of the projection's [B, L, H d].
    auto x = torch::randn({B, L, H * d}).requires_grad_();
    auto g = torch::randn({B, H, L, d});
    auto y = CpuRopeHeadMajor(x.view({B, L, H, d}), cos, sin);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{B, H, L, d}));
    EXPECT_TRUE(y.is_contiguous());
    auto dx = torch::autograd::grad({y}, {x}, {g})[0];
    auto x64 = x.detach().to(torch::kFloat64).requires_grad_();
    auto pairs = x64.view({B, L, H, d / 2, 2});
    auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
    auto c = cos.to(torch::kFloat64).view({1, L, 1, d / 2}), s = sin.to(torch::kFloat64).view({1, L, 1, d / 2});
    auto y64 = torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).view({B, L, H, d}).transpose(1, 2);
    auto dx64 = torch::autograd::grad({y64}, {x64}, {g.to(torch::kFloat64)})[0];
    EXPECT_LT(MaxRelErr(y, y64), 1e-6) << "d = " << d;
    EXPECT_LT(MaxRelErr(dx, dx64), 1e-6) << "dx, d = " << d;
  }
}

TEST(CpuRopeHeadMajor, WithoutAGraphGivesTheSameBitsAndRefusesBadTables) {
  torch::manual_seed(8);
  auto x = torch::randn({2, 5, 4, 8});
  auto theta = torch::rand({5, 4});
  auto cos = torch::cos(theta), sin = torch::sin(theta);
  torch::Tensor plain;
  {
    torch::NoGradGuard no_grad;
    plain = CpuRopeHeadMajor(x, cos, sin);
  }
  EXPECT_TRUE(torch::equal(CpuRopeHeadMajor(x.clone().requires_grad_(), cos, sin).detach(), plain));
  EXPECT_THROW(CpuRopeHeadMajor(x, torch::cos(torch::rand({4, 4})), sin), c10::Error);  // other length
  EXPECT_THROW(CpuRopeHeadMajor(torch::randn({2, 5, 4, 7}), cos, sin), c10::Error);     // odd d
}

TEST(FusedCpuKernels, ColumnSumsOverManyRowsAreExactEnoughAndTheSameBitsAtAnyThreadCount) {
  torch::manual_seed(9);
  // 2 x 700 rows: the weight, shift and scale gradients sum over many 64-row chunks.
  auto x = (torch::randn({2, 700, 40}) + 2).requires_grad_(), w = torch::rand({40}).requires_grad_();
  auto mod = (torch::randn({2, 2, 40}) * 0.3).requires_grad_();
  auto g = torch::randn({2, 700, 40});
  auto grads = [&] {
    auto e = mod.chunk(2, 1);
    auto y = CpuRmsNorm(x, w, 1e-6) + CpuLayerNormModulate(x, e[0], e[1], 1e-6);
    return torch::autograd::grad({y}, {w, mod}, {g});
  };
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = grads();
  at::set_num_threads(2);
  const auto two = grads();
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one[0], two[0]));
  EXPECT_TRUE(torch::equal(one[1], two[1]));
  auto x64 = x.detach().to(torch::kFloat64), g64 = g.to(torch::kFloat64);
  auto mean = x64.mean(-1, true), xhat = (x64 - mean) * torch::rsqrt((x64 - mean).pow(2).mean(-1, true) + 1e-6);
  auto dw = (g64 * x64 * torch::rsqrt(x64.pow(2).mean(-1, true) + 1e-6)).sum(std::vector<int64_t>{0, 1});
  auto dmod = torch::stack({g64.sum(1), (g64 * xhat).sum(1)}, 1);  // [2, 2, 40]
  EXPECT_LT(MaxRelErr(one[0], dw), 1e-5);
  EXPECT_LT(MaxRelErr(one[1], dmod), 1e-5);
}

TEST(FusedCpuKernels, ApplyOnlyToFp32CpuTensorsAndCanBeSwitchedOff) {
  auto x = torch::randn({3, 4});
  EXPECT_TRUE(CpuOpsApply(x));
  EXPECT_FALSE(CpuOpsApply(x.to(torch::kBFloat16)));
  EXPECT_FALSE(CpuOpsApply(torch::empty({0, 4})));
  SetFusedCpuKernels(false);
  EXPECT_FALSE(CpuOpsApply(x));
  SetFusedCpuKernels(true);
  EXPECT_TRUE(FusedCpuKernels());
}

}  // namespace
}  // namespace dancegrpo::models
