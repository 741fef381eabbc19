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
