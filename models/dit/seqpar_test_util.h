// Shared by the sequence-parallel DiT tests (dit_seqpar_test: Ulysses; dit_usp_test: ring and
// USP): the same DiT built twice, and a check that the split one equals the plain one.
#ifndef DANCEGRPO_MODELS_DIT_SEQPAR_TEST_UTIL_H_
#define DANCEGRPO_MODELS_DIT_SEQPAR_TEST_UTIL_H_

#include <mpi.h>
#include <torch/torch.h>

#include <memory>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"

namespace dancegrpo::models::testing_util {

inline std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {60}); }

inline std::unique_ptr<VideoDit> Build(const DitConfig& c) {
  torch::manual_seed(7);
  auto m = std::make_unique<VideoDit>(c);
  torch::NoGradGuard ng;
  m->head->head->weight.normal_(0, 0.05);
  return m;
}

inline Conditioning Text(const DitConfig& c) {
  torch::manual_seed(8);
  Conditioning t;
  t.tokens = torch::randn({2, 5, c.text_dim});
  t.token_mask = torch::ones({2, 5}, torch::kBool);
  t.token_mask[1][4] = false;
  t.pooled = torch::randn({2, c.pooled_dim});
  return t;
}

// Runs `plain` and `split` on x and compares the outputs, the input gradients and the parameter
// gradients, the split one's summed over `world` (what the sharded optimizer does).
inline void ExpectSplitEqualsPlain(VideoDit& plain, VideoDit& split, const DitConfig& c, hpc::Communicator& world,
                                   const torch::Tensor& x) {
  auto sigma = torch::tensor({0.8f, 0.3f});
  auto text = Text(c);
  auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
  auto a = plain.Velocity(x1, sigma, text);
  auto b = split.Velocity(x2, sigma, text);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << "max diff " << (a - b).abs().max().item<double>();
  a.pow(2).sum().backward();
  b.pow(2).sum().backward();
  auto gx = x2.grad().clone();
  ASSERT_TRUE(world.AllReduce(gx, hpc::ReduceOp::kSum).ok());
  EXPECT_LE((gx - x1.grad()).norm().item<double>(), 1e-5 * x1.grad().norm().item<double>());
  auto ref = plain.named_parameters();
  for (const auto& p : split.named_parameters()) {
    auto g = p.value().grad().clone();
    ASSERT_TRUE(world.AllReduce(g, hpc::ReduceOp::kSum).ok());
    const auto& r = ref[p.key()].grad();
    EXPECT_LE((g - r).norm().item<double>(), 1e-5 * r.norm().item<double>() + 1e-9) << p.key();
  }
}

}  // namespace dancegrpo::models::testing_util

#endif  // DANCEGRPO_MODELS_DIT_SEQPAR_TEST_UTIL_H_
