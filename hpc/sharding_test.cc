// Sharded AdamW over N ranks equals torch's unsharded AdamW with clip_grad_norm_, fed the
// sum of all ranks' gradients; and each rank holds about 1/N of the optimizer state.
#include "hpc/sharding.h"

#include <mpi.h>
#include <torch/torch.h>

#include <cmath>

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

// Mixed precision: bf16 compute copies, fp32 masters. Fed bf16 gradients, the masters follow
// torch's fp32 AdamW on the same (widened) gradients, and the compute copies are the masters
// rounded to bf16 on every rank.
TEST(ShardedAdamW, Bf16ComputeCopiesFollowFp32Masters) {
  auto comm = World();
  const int n = comm->size();
  AdamWConfig c;
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.max_grad_norm = 0.5;
  std::vector<torch::Tensor> bf16;
  for (auto& p : MakeParams()) bf16.push_back(p.to(torch::kBFloat16).set_requires_grad(true));
  auto opt = ShardedAdamW::Create(bf16, comm, c);
  ASSERT_TRUE(opt.ok()) << opt.status();
  ASSERT_TRUE((*opt)->keeps_master());
  EXPECT_EQ((*opt)->state_bytes(), 3 * 4 * (*opt)->shard_size()) << "moments and the master shard";
  // Masters start from fp32 values given by LoadFlat (the trainer passes the unrounded weights).
  auto fp32 = MakeParams();
  (*opt)->LoadFlat((*opt)->Flatten(fp32));
  auto ref_params = MakeParams();
  for (auto& p : ref_params) p.set_requires_grad(true);
  torch::optim::AdamW ref(ref_params, torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < bf16.size(); ++i)
      bf16[i].mutable_grad() = Grad(fp32[i], comm->rank(), i, step).to(torch::kBFloat16);
    ASSERT_TRUE((*opt)->Step().ok());
    for (size_t i = 0; i < ref_params.size(); ++i) {
      auto g = torch::zeros_like(ref_params[i]);
      for (int r = 0; r < n; ++r) g += Grad(ref_params[i], r, i, step).to(torch::kBFloat16).to(torch::kFloat32);
      ref_params[i].mutable_grad() = g;
    }
    torch::nn::utils::clip_grad_norm_(ref_params, c.max_grad_norm);
    ref.step();
  }
  // Every rank's master shard matches the reference's slice; the compute copies are its rounding.
  auto ref_flat = (*opt)->Flatten(ref_params).narrow(0, (*opt)->shard_begin(), (*opt)->shard_size());
  EXPECT_TRUE(torch::allclose((*opt)->MasterShard(), ref_flat, 1e-6, 1e-7))
      << (((*opt)->MasterShard() - ref_flat).abs().max());
  for (size_t i = 0; i < bf16.size(); ++i) {
    EXPECT_EQ(bf16[i].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(bf16[i], ref_params[i].detach().to(torch::kBFloat16)))
        << "param " << i << " max diff " << (bf16[i].to(torch::kFloat32) - ref_params[i]).abs().max();
  }
}

// bf16 sums over MPI (which has no bf16 type) are exact where bf16 can hold the result.
TEST(ShardedAdamW, MpiReducesBf16) {
  auto comm = World();
  const int n = comm->size();
  auto t = torch::full({5}, 0.25 * (comm->rank() + 1), torch::kBFloat16);
  ASSERT_TRUE(comm->AllReduce(t, ReduceOp::kSum).ok());
  EXPECT_TRUE(torch::equal(t, torch::full({5}, 0.125 * n * (n + 1), torch::kBFloat16))) << t;
  auto in = torch::arange(2 * n, torch::kFloat32).to(torch::kBFloat16);
  auto out = torch::empty({2}, torch::kBFloat16);
  ASSERT_TRUE(comm->ReduceScatter(in, out, ReduceOp::kSum).ok());
  auto expected = torch::arange(2 * comm->rank(), 2 * comm->rank() + 2, torch::kFloat32) * n;
  EXPECT_TRUE(torch::equal(out.to(torch::kFloat32), expected)) << out;
  auto mx = torch::full({3}, static_cast<float>(comm->rank()), torch::kBFloat16);
  ASSERT_TRUE(comm->AllReduce(mx, ReduceOp::kMax).ok());
  EXPECT_EQ(mx[0].item<float>(), n - 1);
}

TEST(ShardedAdamW, Bf16ReductionMatchesFp32ToBf16Rounding) {
  auto comm = World();
  AdamWConfig c;
  c.lr = 1e-2;
  c.max_grad_norm = 0;
  auto run = [&](torch::ScalarType reduce) {
    c.reduce_dtype = reduce;
    auto params = MakeParams();
    for (auto& p : params) p.set_requires_grad(true);
    auto opt = ShardedAdamW::Create(params, comm, c);
    EXPECT_TRUE(opt.ok()) << opt.status();
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = Grad(params[i], comm->rank(), i, 0);
    auto norm = (*opt)->Step();
    EXPECT_TRUE(norm.ok());
    return std::make_pair(*norm, params);
  };
  auto [norm32, p32] = run(torch::kFloat32);
  auto [norm16, p16] = run(torch::kBFloat16);
  EXPECT_NEAR(norm16, norm32, 1e-2 * norm32);  // bf16 keeps 8 bits of mantissa
  for (size_t i = 0; i < p32.size(); ++i)  // a first Adam step is lr * sign(g) but for tiny |g|
    EXPECT_LE((p16[i] - p32[i]).abs().max().item<double>(), 2 * c.lr + 1e-6);
}

TEST(ShardedAdamW, NonFiniteGradientSkipsTheStepOnEveryRank) {
  auto comm = World();
  auto params = MakeParams();
  for (auto& p : params) p.set_requires_grad(true);
  auto before = MakeParams();
  auto opt = ShardedAdamW::Create(params, comm, AdamWConfig{});
  ASSERT_TRUE(opt.ok());
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = Grad(params[i], comm->rank(), i, 0);
  if (comm->rank() == comm->size() - 1) params[2].mutable_grad()[0][1][1] = std::nanf("");  // one bad element
  auto norm = (*opt)->Step();
  ASSERT_TRUE(norm.ok());
  EXPECT_FALSE(std::isfinite(*norm));
  EXPECT_EQ((*opt)->skipped_steps(), 1);
  EXPECT_EQ((*opt)->steps_taken(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i], before[i])) << "a skipped step changes no weight";
    EXPECT_EQ(params[i].grad().abs().sum().item<double>(), 0.0) << "and zeroes the gradients";
  }
  EXPECT_EQ((*opt)->exp_avg().abs().sum().item<double>(), 0.0);
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = Grad(params[i], comm->rank(), i, 1);
  auto next = (*opt)->Step();
  ASSERT_TRUE(next.ok() && std::isfinite(*next));
  EXPECT_EQ((*opt)->steps_taken(), 1);
}

TEST(ShardedAdamW, RefusesBadHyperparametersNamingThem) {
  auto comm = World();
  for (double lr : {std::nan(""), 0.0, -1.0, static_cast<double>(INFINITY)}) {
    AdamWConfig c;
    c.lr = lr;
    auto opt = ShardedAdamW::Create(MakeParams(), comm, c);
    ASSERT_FALSE(opt.ok());
    EXPECT_NE(opt.status().message().find("learning rate"), std::string::npos) << opt.status();
  }
  AdamWConfig c;
  c.beta2 = 1.0;
  EXPECT_FALSE(ShardedAdamW::Create(MakeParams(), comm, c).ok());
  c = AdamWConfig{};
  c.reduce_dtype = torch::kFloat16;
  EXPECT_FALSE(ShardedAdamW::Create(MakeParams(), comm, c).ok());
}

}  // namespace
}  // namespace dancegrpo::hpc
