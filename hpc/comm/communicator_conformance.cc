#include "hpc/comm/communicator_conformance.h"

#include <torch/torch.h>

namespace dancegrpo::hpc {

torch::Device CommunicatorConformance::device() const {
  return comm_->backend() == "nccl" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

namespace {

torch::Tensor Iota(int64_t n, torch::ScalarType t, torch::Device d) {
  return torch::arange(n, torch::TensorOptions().dtype(torch::kFloat64)).to(t).to(d);
}

TEST_P(CommunicatorConformance, AllReduceSumMaxMin) {
  const int r = comm_->rank(), n = comm_->size();
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64}) {
    auto x = (Iota(1000, dtype, device()) + r * 1000).contiguous();
    ASSERT_TRUE(comm_->AllReduce(x, ReduceOp::kSum).ok());
    auto expected = Iota(1000, torch::kFloat64, torch::kCPU) * n + 1000.0 * n * (n - 1) / 2;
    EXPECT_TRUE(torch::equal(x.cpu().to(torch::kFloat64), expected)) << c10::toString(dtype);
  }
  auto mx = torch::full({7}, static_cast<float>(r), torch::TensorOptions().device(device()));
  ASSERT_TRUE(comm_->AllReduce(mx, ReduceOp::kMax).ok());
  EXPECT_EQ(mx.cpu()[3].item<float>(), n - 1);
  auto mn = torch::full({7}, static_cast<float>(r + 5), torch::TensorOptions().device(device()));
  ASSERT_TRUE(comm_->AllReduce(mn, ReduceOp::kMin).ok());
  EXPECT_EQ(mn.cpu()[6].item<float>(), 5.0f);
}

TEST_P(CommunicatorConformance, ReduceScatterGivesEachRankItsReducedChunk) {
  const int r = comm_->rank(), n = comm_->size();
  const int64_t k = 33;
  auto in = (Iota(n * k, torch::kFloat64, device()) * 0.5 + r).contiguous();
  auto out = torch::empty({k}, in.options());
  ASSERT_TRUE(comm_->ReduceScatter(in, out, ReduceOp::kSum).ok());
  auto j = Iota(k, torch::kFloat64, torch::kCPU) + r * k;
  EXPECT_TRUE(torch::equal(out.cpu(), j * 0.5 * n + 1.0 * n * (n - 1) / 2));
}

TEST_P(CommunicatorConformance, AllGatherConcatenatesInRankOrder) {
  const int r = comm_->rank(), n = comm_->size();
  auto in = (Iota(5, torch::kFloat32, device()) + 100 * r).contiguous();
  auto out = torch::empty({n * 5}, in.options());
  ASSERT_TRUE(comm_->AllGather(in, out).ok());
  for (int src = 0; src < n; ++src)
    EXPECT_TRUE(torch::equal(out.cpu().narrow(0, src * 5, 5), Iota(5, torch::kFloat32, torch::kCPU) + 100 * src));
  // 16-bit floats move bit-exactly.
  auto bf = (torch::randn({4}) * (r + 1)).to(torch::kBFloat16).to(device());
  auto gathered = torch::empty({n * 4}, bf.options());
  ASSERT_TRUE(comm_->AllGather(bf, gathered).ok());
  EXPECT_TRUE(torch::equal(gathered.cpu().narrow(0, r * 4, 4), bf.cpu()));
}

// A started gather completes at Wait, also with other collectives issued in between (how
// ZeRO-3 prefetches the next block while the current one computes and communicates).
TEST_P(CommunicatorConformance, StartedAllGatherCompletesAtWaitAcrossOtherCollectives) {
  const int r = comm_->rank(), n = comm_->size();
  auto in = (Iota(6, torch::kFloat32, device()) + 10 * r).contiguous();
  auto out = torch::empty({n * 6}, in.options());
  auto pending = comm_->StartAllGather(in, out);
  ASSERT_TRUE(pending.ok()) << pending.status();
  auto sum = torch::ones({3}, torch::TensorOptions().device(device()));
  ASSERT_TRUE(comm_->AllReduce(sum, ReduceOp::kSum).ok());
  ASSERT_TRUE((*pending)->Wait().ok());
  ASSERT_TRUE((*pending)->Wait().ok()) << "a second Wait is a no-op";
  EXPECT_EQ(sum.cpu()[0].item<float>(), n);
  for (int src = 0; src < n; ++src)
    EXPECT_TRUE(torch::equal(out.cpu().narrow(0, src * 6, 6), Iota(6, torch::kFloat32, torch::kCPU) + 10 * src));
}

TEST_P(CommunicatorConformance, AllToAllTransposesChunks) {
  const int r = comm_->rank(), n = comm_->size();
  const int64_t k = 3;
  // Chunk j (for rank j) element i holds r*1000 + j*10 + i.
  auto in = torch::empty({n * k}, torch::kFloat32);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < k; ++i) in[j * k + i] = r * 1000 + j * 10 + i;
  in = in.to(device());
  auto out = torch::empty_like(in);
  ASSERT_TRUE(comm_->AllToAll(in, out).ok());
  auto o = out.cpu();
  for (int src = 0; src < n; ++src)
    for (int i = 0; i < k; ++i) EXPECT_EQ(o[src * k + i].item<float>(), src * 1000 + r * 10 + i);
}

TEST_P(CommunicatorConformance, BroadcastFromLastRank) {
  const int r = comm_->rank(), n = comm_->size();
  auto x = torch::full({9}, static_cast<double>(r), torch::TensorOptions().dtype(torch::kFloat64).device(device()));
  ASSERT_TRUE(comm_->Broadcast(x, n - 1).ok());
  EXPECT_TRUE(torch::equal(x.cpu(), torch::full({9}, static_cast<double>(n - 1), torch::kFloat64)));
  EXPECT_TRUE(comm_->Barrier().ok());
}

TEST_P(CommunicatorConformance, SplitMakesIndependentSubCommunicators) {
  const int r = comm_->rank(), n = comm_->size();
  auto sub = comm_->Split(r % 2, r);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ((*sub)->size(), (n + 1 - r % 2) / 2);
  EXPECT_EQ((*sub)->rank(), r / 2);
  auto x = torch::full({1}, static_cast<int64_t>(r), torch::TensorOptions().dtype(torch::kInt64).device(device()));
  ASSERT_TRUE((*sub)->AllReduce(x, ReduceOp::kSum).ok());
  int64_t expected = 0;
  for (int q = r % 2; q < n; q += 2) expected += q;
  EXPECT_EQ(x.cpu().item<int64_t>(), expected);
}

TEST_P(CommunicatorConformance, LargeAllReduceIsExact) {
  const int r = comm_->rank(), n = comm_->size();
  auto x = torch::full({1 << 20}, static_cast<float>(r + 1), torch::TensorOptions().device(device()));
  ASSERT_TRUE(comm_->AllReduce(x, ReduceOp::kSum).ok());
  auto c = x.cpu();
  EXPECT_EQ(c.min().item<float>(), n * (n + 1) / 2.0f);
  EXPECT_EQ(c.max().item<float>(), n * (n + 1) / 2.0f);
}

TEST_P(CommunicatorConformance, MisshapenArgumentsAreRejectedLocally) {
  const int n = comm_->size();
  auto in = torch::zeros({n * 4 + 1}, torch::TensorOptions().device(device()));
  auto out = torch::zeros({4}, in.options());
  auto s = comm_->ReduceScatter(in, out, ReduceOp::kSum);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ReduceScatter"), std::string::npos) << s;
  auto wrong_type = torch::zeros({4 * n}, torch::TensorOptions().dtype(torch::kFloat64).device(device()));
  EXPECT_FALSE(comm_->AllGather(out, wrong_type).ok());
  auto x = torch::zeros({2}, in.options());
  auto bad_root = comm_->Broadcast(x, n + 2);
  ASSERT_FALSE(bad_root.ok());
  EXPECT_NE(bad_root.message().find("root"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo::hpc
