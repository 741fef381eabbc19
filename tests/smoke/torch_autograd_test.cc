// libtorch smoke test: autograd gradients against their closed forms.
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(TorchSmoke, ElementwiseGradientMatchesClosedForm) {
  const std::vector<double> xs = {-2.0, -0.5, 0.0, 0.3, 1.7};
  auto x = torch::tensor(xs, torch::kFloat64).requires_grad_(true);
  // f(x) = sum(sin(x) * x^2)  =>  df/dx = cos(x) x^2 + 2 x sin(x)
  auto f = (torch::sin(x) * x.pow(2)).sum();
  f.backward();
  auto grad = x.grad();
  ASSERT_EQ(grad.numel(), static_cast<int64_t>(xs.size()));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i];
    const double expected = std::cos(v) * v * v + 2.0 * v * std::sin(v);
    EXPECT_NEAR(grad[i].item<double>(), expected, 1e-12) << "at x=" << v;
  }
}

TEST(TorchSmoke, MatrixGradientMatchesClosedForm) {
  torch::manual_seed(7);
  auto w = torch::randn({3, 4}, torch::kFloat64).requires_grad_(true);
  auto x = torch::randn({4, 1}, torch::kFloat64);
  // L = ||W x||^2  =>  dL/dW = 2 (W x) x^T
  auto loss = torch::matmul(w, x).pow(2).sum();
  loss.backward();
  auto expected = 2.0 * torch::matmul(torch::matmul(w.detach(), x), x.t());
  EXPECT_TRUE(torch::allclose(w.grad(), expected, 1e-12, 1e-12));
}

TEST(TorchSmoke, AttentionMatchesManualFormula) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 4, 5, 8});
  auto k = torch::randn({2, 4, 5, 8});
  auto v = torch::randn({2, 4, 5, 8});
  auto manual = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0), -1).matmul(v);
  EXPECT_EQ(manual.sizes(), v.sizes());
#if TORCH_VERSION_MAJOR >= 2
  // 2.x-only API, guarded so the same source builds against Debian's libtorch 1.13.
  auto fused = at::scaled_dot_product_attention(q, k, v);
  EXPECT_TRUE(torch::allclose(fused, manual, 1e-5, 1e-5));
#else
  // 1.13: rows of the attention matrix sum to one.
  auto attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0), -1);
  EXPECT_TRUE(torch::allclose(attn.sum(-1), torch::ones({2, 4, 5}), 1e-6, 1e-6));
#endif
}

}  // namespace
