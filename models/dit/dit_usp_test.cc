// Ring attention and USP (Ulysses x Ring) in the DiT equal no sequence parallelism: every
// rank builds the same DiT twice, runs it whole and with SetSequenceParallel(world, U) on the
// same input, and compares outputs, and gradients once the ranks' partial gradients are
// summed. U = 1 is ring attention alone (any head count: 3 and 4 heads over 2, 3 or 4 ranks);
// U = 2 at 4 ranks is USP 2 x 2.
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

TEST(DitRingAndUsp, ForwardAndGradientsEqualNoSequenceParallel) {
  auto world = World();
  const int n = world->size();
  for (const int64_t heads : {4, 3}) {
    auto c = *DitPreset("tiny");
    c.heads = heads;
    c.dim = heads * 16;
    for (int u = 1; u < n; ++u) {
      if (n % u != 0 || heads % u != 0) continue;
      SCOPED_TRACE(testing::Message() << heads << " heads, " << n << " ranks, Ulysses " << u << " x ring " << n / u);
      auto plain = Build(c), split = Build(c);
      ASSERT_TRUE(split->SetSequenceParallel(world, u).ok());
      torch::manual_seed(9);
      auto x = torch::randn({2, 4, 3, 8, 8});  // 3 x 4 x 4 = 48 tokens: splits over 2, 3 and 4
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
}

TEST(DitRingAndUsp, RefusesAUlyssesDegreeThatDoesNotDivide) {
  auto world = World();
  auto c = *DitPreset("tiny");
  c.heads = 3;
  c.dim = 48;
  VideoDit m(c);
  auto s = m.SetSequenceParallel(world, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not divide sp"), std::string::npos) << s;
  if (world->size() % 2 == 0) {
    s = m.SetSequenceParallel(world, 2);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("does not divide the 3 attention heads"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace dancegrpo::models
