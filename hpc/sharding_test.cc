// Sharded AdamW over N ranks equals torch's unsharded AdamW with clip_grad_norm_, fed the
// sum of all ranks' gradients; and each rank holds about 1/N of the optimizer state.
#include "hpc/sharding.h"

#include <mpi.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"

namespace dancegrpo::hpc {
namespace {

std::shared_ptr<Communicator> World() { return *MpiCommunicator::Create(MPI_COMM_WORLD, {60}); }

std::vector<torch::Tensor> MakeParams() {
  torch::manual_seed(11);  // identical on every rank
  return {torch::randn({3, 5}), torch::randn({7}), torch::randn({2, 2, 3}), torch::randn({1})};
}

// Rank r's gradient for parameter i at step s: self-checking, derived from (r, i, s).
torch::Tensor Grad(const torch::Tensor& p, int rank, size_t i, int step) {
  return torch::sin(torch::arange(p.numel(), torch::kFloat32) * (0.3 + 0.1 * i) + rank + 2 * step).view(p.sizes()) *
         (1.0 + rank) * 0.7;
}

void CompareWithTorchAdamW(double max_grad_norm, int64_t bucket, bool ema) {
  auto comm = World();
  const int n = comm->size();
  AdamWConfig c;
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.max_grad_norm = max_grad_norm;
  c.bucket_elements = bucket;
  c.ema = ema;
  c.ema_decay = 0.9;
  auto sharded_params = MakeParams();
  for (auto& p : sharded_params) p.set_requires_grad(true);
  auto opt = ShardedAdamW::Create(sharded_params, comm, c);
  ASSERT_TRUE(opt.ok()) << opt.status();

  auto ref_params = MakeParams();
  for (auto& p : ref_params) p.set_requires_grad(true);
  torch::optim::AdamW ref(ref_params, torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
  std::vector<torch::Tensor> ref_ema;
  for (auto& p : ref_params) ref_ema.push_back(p.detach().clone());

  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < sharded_params.size(); ++i)
      sharded_params[i].mutable_grad() = Grad(sharded_params[i], comm->rank(), i, step);
    auto norm = (*opt)->Step();
    ASSERT_TRUE(norm.ok()) << norm.status();
    for (size_t i = 0; i < ref_params.size(); ++i) {
      auto g = torch::zeros_like(ref_params[i]);
      for (int r = 0; r < n; ++r) g += Grad(ref_params[i], r, i, step);
      ref_params[i].mutable_grad() = g;
    }
    const double ref_norm = max_grad_norm > 0 ? torch::nn::utils::clip_grad_norm_(ref_params, max_grad_norm)
                                              : torch::nn::utils::clip_grad_norm_(ref_params, 1e30);
    ref.step();
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < ref_params.size(); ++i) ref_ema[i].mul_(0.9).add_(ref_params[i], 0.1);
    }
    EXPECT_NEAR(*norm, ref_norm, 1e-5 * ref_norm) << "step " << step;
    for (size_t i = 0; i < ref_params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(sharded_params[i], ref_params[i], 1e-6, 1e-7))
          << "param " << i << " step " << step << " max diff "
          << (sharded_params[i] - ref_params[i]).abs().max().item<double>();
      EXPECT_FALSE(sharded_params[i].grad().abs().sum().item<double>() > 0) << "gradients are zeroed";
    }
  }
  if (ema) {
    auto e = (*opt)->GatherEma();
    ASSERT_TRUE(e.ok());
    for (size_t i = 0; i < ref_ema.size(); ++i) EXPECT_TRUE(torch::allclose((*e)[i], ref_ema[i], 1e-6, 1e-7));
  }
}

TEST(ShardedAdamW, EqualsTorchAdamWWithClipping) { CompareWithTorchAdamW(0.5, 1 << 20, false); }
TEST(ShardedAdamW, EqualsTorchAdamWWithoutClippingAndTinyBuckets) { CompareWithTorchAdamW(0.0, 3, true); }

TEST(ShardedAdamW, StateIsAboutOneNthPerRank) {
  auto comm = World();
  std::vector<torch::Tensor> params = {torch::zeros({1000, 10}), torch::zeros({333})};
  auto opt = ShardedAdamW::Create(params, comm, AdamWConfig{});
  ASSERT_TRUE(opt.ok());
  const int64_t total = 10333, n = comm->size();
  EXPECT_EQ((*opt)->total_elements(), total);
  EXPECT_EQ((*opt)->shard_size(), (total + n - 1) / n);
  EXPECT_EQ((*opt)->state_bytes(), 2 * 4 * ((total + n - 1) / n));
  EXPECT_LE((*opt)->state_bytes(), 2 * 4 * total / n + 8);
}

TEST(ShardedAdamW, RanksThatDisagreeOnTheModelAreRefused) {
  auto comm = World();
  if (comm->size() == 1) GTEST_SKIP() << "needs two ranks";
  std::vector<torch::Tensor> params = {torch::zeros({10 + comm->rank()})};
  auto opt = ShardedAdamW::Create(params, comm, AdamWConfig{});
  ASSERT_FALSE(opt.ok());
  EXPECT_NE(opt.status().message().find("disagree"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo::hpc
