// Sequence parallelism (Ulysses) equals no sequence parallelism: every rank builds the
// same DiT twice, runs it with sp = world size and with sp = 1 on the same input, and
// compares outputs, and gradients once the sp ranks' partial gradients are summed (what
// the sharded optimizer does).
#include <mpi.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "models/dit/seqpar_test_util.h"

namespace dancegrpo::models {
namespace {

using testing_util::Build;
using testing_util::Text;
using testing_util::World;

TEST(DitSequenceParallel, ForwardAndGradientsEqualNoSequenceParallel) {
  auto world = World();
  if (4 % world->size() != 0) GTEST_SKIP() << "Ulysses alone needs sp to divide the tiny DiT's 4 heads";
  for (const int64_t stem : {0, 8}) {
    auto c = *DitPreset("tiny");  // 4 heads: sp = 2 or 4
    c.stem_channels = stem;       // the pixel-level stem runs before the tokens are split
    auto plain = Build(c), split = Build(c);
    ASSERT_TRUE(split->SetSequenceParallel(world, world->size()).ok());  // Ulysses alone
    torch::manual_seed(9);
    auto x = torch::randn({2, 4, 2, 8, 8});  // 2 x 4 x 4 = 32 tokens
    testing_util::ExpectSplitEqualsPlain(*plain, *split, c, *world, x);
  }
}

TEST(DitSequenceParallel, UlyssesAloneRefusesSpThatDoesNotDivideHeadsNamingTheDegreeThatWorks) {
  auto world = World();
  if (world->size() == 1 || 3 % world->size() == 0) GTEST_SKIP() << "sp = 1 or 3 divides 3 heads";
  auto c = *DitPreset("tiny");
  c.heads = 3;
  c.dim = 48;  // head_dim 16
  VideoDit m(c);
  auto s = m.SetSequenceParallel(world, world->size());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("does not divide the 3 attention heads"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("use --ulysses=1"), std::string::npos) << s.status();
  // The default takes the largest degree that divides sp and the heads: here ring alone.
  auto chosen = m.SetSequenceParallel(world, 0);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(*chosen, 1);
}

TEST(DitSequenceParallel, TokenCountThatDoesNotSplitIsAClearError) {
  auto world = World();
  const auto c = *DitPreset("tiny");
  auto m = Build(c);
  ASSERT_TRUE(m->SetSequenceParallel(world, 0).ok());
  auto x = torch::randn({2, 4, 1, 2, 10});  // 1 x 1 x 5 = 5 tokens: no split over 2, 3 or 4 ranks
  try {
    m->Velocity(x, torch::tensor({0.5f, 0.5f}), Text(c));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by sp"), std::string::npos);
  }
}

}  // namespace
}  // namespace dancegrpo::models
