// Sequence parallelism (Ulysses) equals no sequence parallelism: every rank builds the
// same DiT twice, runs it with sp = world size and with sp = 1 on the same input, and
// compares outputs, and gradients once the sp ranks' partial gradients are summed (what
// the sharded optimizer does).
#include <mpi.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"

namespace dancegrpo::models {
namespace {

std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {60}); }

std::unique_ptr<VideoDit> Build(const DitConfig& c) {
  torch::manual_seed(7);
  auto m = std::make_unique<VideoDit>(c);
  torch::NoGradGuard ng;
  m->head->head->weight.normal_(0, 0.05);
  return m;
}

Conditioning Text(const DitConfig& c) {
  torch::manual_seed(8);
  Conditioning t;
  t.tokens = torch::randn({2, 5, c.text_dim});
  t.token_mask = torch::ones({2, 5}, torch::kBool);
  t.token_mask[1][4] = false;
  t.pooled = torch::randn({2, c.pooled_dim});
  return t;
}

TEST(DitSequenceParallel, ForwardAndGradientsEqualNoSequenceParallel) {
  auto world = World();
  for (const int64_t stem : {0, 8}) {
    auto c = *DitPreset("tiny");  // 4 heads: sp = 2 or 4
    c.stem_channels = stem;       // the pixel-level stem runs before the tokens are split
    auto plain = Build(c), split = Build(c);
    ASSERT_TRUE(split->SetSequenceParallel(world).ok());
    torch::manual_seed(9);
    auto x = torch::randn({2, 4, 2, 8, 8});  // 2 x 4 x 4 = 32 tokens
    auto sigma = torch::tensor({0.8f, 0.3f});
    auto text = Text(c);
    auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
    auto a = plain->Velocity(x1, sigma, text);
    auto b = split->Velocity(x2, sigma, text);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << "max diff " << (a - b).abs().max().item<double>();
    a.pow(2).sum().backward();
    b.pow(2).sum().backward();
    auto gx = x2.grad().clone();
    ASSERT_TRUE(world->AllReduce(gx, hpc::ReduceOp::kSum).ok());
    EXPECT_LE((gx - x1.grad()).norm().item<double>(), 1e-5 * x1.grad().norm().item<double>());
    auto ref = plain->named_parameters();
    for (const auto& p : split->named_parameters()) {
      auto g = p.value().grad().clone();
      ASSERT_TRUE(world->AllReduce(g, hpc::ReduceOp::kSum).ok());
      const auto& r = ref[p.key()].grad();
      EXPECT_LE((g - r).norm().item<double>(), 1e-5 * r.norm().item<double>() + 1e-9) << p.key();
    }
  }
}

TEST(DitSequenceParallel, RefusesSpThatDoesNotDivideHeads) {
  auto world = World();
  auto c = *DitPreset("tiny");
  c.heads = 3;
  c.dim = 48;  // head_dim 16
  VideoDit m(c);
  auto s = m.SetSequenceParallel(world);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not divide the 3 attention heads"), std::string::npos) << s;
}

TEST(DitSequenceParallel, TokenCountThatDoesNotSplitIsAClearError) {
  auto world = World();
  const auto c = *DitPreset("tiny");
  auto m = Build(c);
  ASSERT_TRUE(m->SetSequenceParallel(world).ok());
  auto x = torch::randn({2, 4, 1, 2, 6});  // 1 x 1 x 3 = 3 tokens
  try {
    m->Velocity(x, torch::tensor({0.5f, 0.5f}), Text(c));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by sp"), std::string::npos);
  }
}

}  // namespace
}  // namespace dancegrpo::models
