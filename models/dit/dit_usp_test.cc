// Ring attention and USP (Ulysses x Ring) in the DiT equal no sequence parallelism: every
// rank builds the same DiT twice, runs it whole and with SetSequenceParallel(world, U) on the
// same input, and compares outputs, and gradients once the ranks' partial gradients are
// summed. U = 1 is ring attention alone (any head count: 3 and 4 heads over 2, 3 or 4 ranks);
// U = 2 at 4 ranks is USP 2 x 2.
#include <mpi.h>
#include <torch/torch.h>

#include <numeric>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "models/dit/seqpar_test_util.h"

namespace dancegrpo::models {
namespace {

using testing_util::Build;
using testing_util::Text;
using testing_util::World;

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
      testing_util::ExpectSplitEqualsPlain(*plain, *split, c, *world, x);
    }
  }
}

// bf16 weights and activations (ring attention accumulates in fp32 and returns bf16): ring and
// USP equal the unsplit bf16 model to bf16 tolerance, outputs and summed parameter gradients,
// with the text mask of Text().
TEST(DitRingAndUsp, Bf16EqualsNoSequenceParallelToBf16Tolerance) {
  auto world = World();
  const int n = world->size();
  if (n == 1) GTEST_SKIP() << "needs 2 or more ranks";
  auto c = *DitPreset("tiny");  // 4 heads
  for (int u = 1; u < n; ++u) {
    if (n % u != 0 || c.heads % u != 0) continue;
    SCOPED_TRACE(::testing::Message() << n << " ranks, Ulysses " << u << " x ring " << n / u);
    auto plain = Build(c), split = Build(c);
    plain->to(torch::kBFloat16);
    split->to(torch::kBFloat16);
    ASSERT_TRUE(split->SetSequenceParallel(world, u).ok());
    torch::manual_seed(9);
    auto x = torch::randn({2, 4, 3, 8, 8}).to(torch::kBFloat16);  // 48 tokens
    auto sigma = torch::tensor({0.8f, 0.3f});
    auto text = Text(c);
    text.tokens = text.tokens.to(torch::kBFloat16);
    text.pooled = text.pooled.to(torch::kBFloat16);
    auto a = plain->Velocity(x, sigma, text).to(torch::kFloat);
    auto b = split->Velocity(x, sigma, text).to(torch::kFloat);
    const double scale = a.abs().max().item<double>();
    EXPECT_LE((a - b).abs().max().item<double>(), 3e-2 * scale);
    a.pow(2).sum().backward();
    b.pow(2).sum().backward();
    auto ref = plain->named_parameters();
    for (const auto& p : split->named_parameters()) {
      auto g = p.value().grad().to(torch::kFloat);
      ASSERT_TRUE(world->AllReduce(g, hpc::ReduceOp::kSum).ok());
      const auto r = ref[p.key()].grad().to(torch::kFloat);
      EXPECT_LE((g - r).norm().item<double>(), 5e-2 * r.norm().item<double>() + 1e-6) << p.key();
    }
  }
}

TEST(DitRingAndUsp, RefusesAUlyssesDegreeThatDoesNotDivide) {
  auto world = World();
  const int n = world->size();
  auto c = *DitPreset("tiny");
  c.heads = 3;
  c.dim = 48;
  VideoDit m(c);
  auto s = m.SetSequenceParallel(world, n + 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("does not divide sp"), std::string::npos) << s.status();
  s = m.SetSequenceParallel(world, -1);
  ASSERT_FALSE(s.ok());
  if (n % 2 == 0) {
    s = m.SetSequenceParallel(world, 2);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("does not divide the 3 attention heads"), std::string::npos) << s.status();
  }
}

TEST(DitRingAndUsp, DefaultDegreeIsTheLargestDividingSpAndHeads) {
  auto world = World();
  const int n = world->size();
  for (const int64_t heads : {4, 3, 12}) {
    auto c = *DitPreset("tiny");
    c.heads = heads;
    c.dim = heads * 16;
    VideoDit m(c);
    auto u = m.SetSequenceParallel(world, 0);
    ASSERT_TRUE(u.ok()) << u.status();
    EXPECT_EQ(*u, std::gcd(n, static_cast<int>(heads))) << heads << " heads, sp " << n;
  }
}

}  // namespace
}  // namespace dancegrpo::models
