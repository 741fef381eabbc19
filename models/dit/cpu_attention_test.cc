#include "models/dit/cpu_attention.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "models/dit/cpu_ops.h"
#include "models/dit/dit.h"

namespace dancegrpo::models {
namespace {

// softmax(q k^T * scale, masked) v in float64: the formula the kernel fuses.
torch::Tensor Reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, double scale) {
  auto scores = torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(-2, -1)) * scale;
  if (mask.defined())
    scores = scores.masked_fill(mask.logical_not().unsqueeze(1).unsqueeze(1), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v.to(torch::kFloat64));
}

double RelErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max() / b.abs().max().clamp_min(1e-30))
      .item<double>();
}

// [B, H, L, d] as the model hands it over: head-major contiguous, or a view of token-major memory.
torch::Tensor Operand(int64_t b, int64_t h, int64_t l, int64_t d, bool token_major) {
  return token_major ? torch::randn({b, l, h, d}).transpose(1, 2) : torch::randn({b, h, l, d});
}

struct Case {
  int64_t lq, lk, d;
  bool token_major, masked;
};

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {100, 100, 16, false, false},  // the shapes demo's self-attention
      {100, 12, 16, true, true},     // its cross-attention: token-major k, v and a text mask
      {37, 53, 8, true, false},      // lengths that are not multiples of the 16 vector lanes
      {1, 5, 4, false, true},        // one query
      {20, 33, 64, true, true},
  };
  return cases;
}

TEST(CpuAttention, ForwardEqualsTheFormulaToFp32Rounding) {
  torch::manual_seed(3);
  for (const auto& c : Cases()) {
    auto q = Operand(2, 3, c.lq, c.d, c.token_major), k = Operand(2, 3, c.lk, c.d, c.token_major),
         v = Operand(2, 3, c.lk, c.d, c.token_major);
    torch::Tensor mask;
    if (c.masked) {
      mask = torch::rand({2, c.lk}) > 0.4;
      mask.select(1, 0).fill_(true);  // every query sees at least one key
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    ASSERT_TRUE(CpuAttentionApplies(q, k, v));
    auto out = CpuAttention(q, k, v, mask, scale);
    ASSERT_EQ(out.sizes(), q.sizes());
    EXPECT_LT(RelErr(out, Reference(q, k, v, mask, scale)), 2e-6) << c.lq << "x" << c.lk << "x" << c.d;
    // The output is token-major memory: the projection after attention reads it without a copy.
    EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
  }
}

TEST(CpuAttention, GradientsEqualAutogradThroughTheFormula) {
  torch::manual_seed(4);
  for (const auto& c : Cases()) {
    auto q = Operand(2, 3, c.lq, c.d, c.token_major).requires_grad_(),
         k = Operand(2, 3, c.lk, c.d, c.token_major).requires_grad_(),
         v = Operand(2, 3, c.lk, c.d, !c.token_major).requires_grad_();
    torch::Tensor mask;
    if (c.masked) {
      mask = torch::rand({2, c.lk}) > 0.4;
      mask.select(1, 0).fill_(true);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    auto upstream = torch::randn({2, c.lq, 3, c.d}).transpose(1, 2);  // as the projection's backward hands it
    auto got = torch::autograd::grad({CpuAttention(q, k, v, mask, scale)}, {q, k, v}, {upstream});
    auto q64 = q.detach().to(torch::kFloat64).requires_grad_(), k64 = k.detach().to(torch::kFloat64).requires_grad_(),
         v64 = v.detach().to(torch::kFloat64).requires_grad_();
    auto want = torch::autograd::grad({Reference(q64, k64, v64, mask, scale)}, {q64, k64, v64},
                                      {upstream.to(torch::kFloat64)});
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(got[i].sizes(), want[i].sizes());
      EXPECT_LT(RelErr(got[i], want[i]), 1e-5) << "input " << i << ", " << c.lq << "x" << c.lk << "x" << c.d;
    }
    // A masked key gets no gradient.
    if (c.masked) {
      auto dead = mask.logical_not().unsqueeze(1).unsqueeze(-1).expand_as(got[1]);
      EXPECT_EQ(got[1].masked_select(dead).abs().max().item<float>(), 0.0f);
      EXPECT_EQ(got[2].masked_select(dead).abs().max().item<float>(), 0.0f);
    }
  }
}

TEST(CpuAttention, WithoutAGraphGivesTheSameBits) {
  torch::manual_seed(5);
  auto q = torch::randn({2, 4, 30, 16}), k = torch::randn({2, 4, 30, 16}), v = torch::randn({2, 4, 30, 16});
  auto with_graph = CpuAttention(q.clone().requires_grad_(), k, v, torch::Tensor(), 0.25);
  torch::Tensor without;
  {
    torch::NoGradGuard no_grad;
    without = CpuAttention(q, k, v, torch::Tensor(), 0.25);
  }
  EXPECT_TRUE(torch::equal(with_graph.detach(), without));
  // An all-true mask is no mask, bit for bit.
  EXPECT_TRUE(torch::equal(CpuAttention(q, k, v, torch::ones({2, 30}, torch::kBool), 0.25), without));
}

TEST(CpuAttention, FastExpIsWithinTwoUlpAndFlushesBelowMinus87) {
  std::vector<float> x;
  for (float t = -87.0f; t <= 0.0f; t += 0.00731f) x.push_back(t);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  x.push_back(-1e-9f);
  std::vector<float> y(x.size());
  FastExpNonPositive(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::abs(y[i] - want) / want);
  }
  EXPECT_LT(worst, 2.4e-7);  // 2 ulp of fp32
  EXPECT_EQ(y[x.size() - 3], 1.0f);
  std::vector<float> low = {-87.5f, -100.0f, -1e30f, -std::numeric_limits<float>::infinity()}, out(4, 1.0f);
  FastExpNonPositive(low.data(), out.data(), 4);
  for (float o : out) EXPECT_EQ(o, 0.0f);
}

TEST(CpuAttention, WholeDitMatchesTheUnfusedOpsInForwardAndBackward) {
  auto config = *DitPreset("tiny");
  config.stem_channels = 8;
  torch::manual_seed(6);
  VideoDit m(config);
  {
    torch::NoGradGuard no_grad;
    m.head->head->weight.normal_(0, 0.05);
  }
  auto x = torch::randn({2, 4, 3, 6, 6});
  auto sigma = torch::tensor({0.7f, 0.2f});
  Conditioning text;
  text.tokens = torch::randn({2, 5, config.text_dim});
  text.token_mask = torch::tensor({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, torch::kBool).view({2, 5});
  text.pooled = torch::randn({2, config.pooled_dim});
  auto run = [&](bool fused, std::vector<torch::Tensor>* grads) {
    SetFusedCpuKernels(fused);
    m.zero_grad();
    auto v = m.Velocity(x, sigma, text);
    v.pow(2).mean().backward();
    grads->clear();
    for (const auto& p : m.parameters()) grads->push_back(p.grad().clone());
    SetFusedCpuKernels(true);
    return v.detach();
  };
  std::vector<torch::Tensor> g_fused, g_unfused;
  auto fused = run(true, &g_fused);
  auto unfused = run(false, &g_unfused);
  EXPECT_LT(RelErr(fused, unfused), 1e-5);
  ASSERT_EQ(g_fused.size(), g_unfused.size());
  for (size_t i = 0; i < g_fused.size(); ++i) EXPECT_LT(RelErr(g_fused[i], g_unfused[i]), 1e-4) << "parameter " << i;
}

TEST(CpuAttention, StepsAsideForWhatItDoesNotTake) {
  auto q = torch::randn({1, 2, 4, 8});
  EXPECT_TRUE(CpuAttentionApplies(q, q, q));
  EXPECT_FALSE(CpuAttentionApplies(q.to(torch::kBFloat16), q, q));
  EXPECT_FALSE(CpuAttentionApplies(q.view({2, 4, 8}), q.view({2, 4, 8}), q.view({2, 4, 8})));
  SetFusedCpuKernels(false);
  EXPECT_FALSE(CpuAttentionApplies(q, q, q));
  SetFusedCpuKernels(true);
}

}  // namespace
}  // namespace dancegrpo::models
