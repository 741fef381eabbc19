// The billion-parameter preset is real: it instantiates on the CPU with the parameter
// count of its formula, and a forward pass on a small clip produces a velocity of the
// clip's shape.
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "models/dit/dit.h"

namespace dancegrpo::models {
namespace {

TEST(VideoDitLarge, Wan13BInstantiatesAndRunsForward) {
  torch::NoGradGuard no_grad;
  const auto config = *DitPreset("wan2.1-1.3b");
  VideoDit model(config);
  int64_t count = 0;
  for (const auto& p : model.parameters()) count += p.numel();
  EXPECT_EQ(count, DitParameterCount(config));
  EXPECT_EQ(count, 1418996800);
  Conditioning text;
  text.tokens = torch::randn({1, 8, config.text_dim});
  text.token_mask = torch::ones({1, 8}, torch::kBool);
  auto x = torch::randn({1, 16, 2, 5, 6});  // odd sizes: padded to 2 x 3 x 3 patches
  auto v = model.Velocity(x, torch::tensor({0.6f}), text);
  EXPECT_EQ(v.sizes(), x.sizes());
  EXPECT_EQ(v.abs().max().item<float>(), 0.0f) << "zero-initialised head";
  // With a non-zero head the output is finite and non-trivial.
  model.head->head->weight.normal_(0, 0.02);
  auto v2 = model.Velocity(x, torch::tensor({0.6f}), text);
  EXPECT_TRUE(torch::isfinite(v2).all().item<bool>());
  EXPECT_GT(v2.abs().max().item<float>(), 0.0f);
}

}  // namespace
}  // namespace dancegrpo::models
