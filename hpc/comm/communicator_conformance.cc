#include "hpc/comm/communicator_conformance.h"

#include <torch/torch.h>

#include <vector>

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

// Started all-reduce and reduce-scatter complete at Wait, in any order of waiting, with a
// blocking collective between start and wait.
TEST_P(CommunicatorConformance, StartedReductionsCompleteAtWait) {
  const int r = comm_->rank(), n = comm_->size();
  auto a = (Iota(64, torch::kFloat32, device()) + r).contiguous();
  auto in = (Iota(n * 8, torch::kFloat64, device()) * (r + 1)).contiguous();
  auto out = torch::empty({8}, in.options());
  auto started_a = comm_->StartAllReduce(a, ReduceOp::kSum);
  ASSERT_TRUE(started_a.ok()) << started_a.status();
  auto started_rs = comm_->StartReduceScatter(in, out, ReduceOp::kSum);
  ASSERT_TRUE(started_rs.ok()) << started_rs.status();
  auto between = torch::ones({3}, torch::TensorOptions().device(device()));
  ASSERT_TRUE(comm_->AllReduce(between, ReduceOp::kSum).ok());
  ASSERT_TRUE((*started_rs)->Wait().ok());
  ASSERT_TRUE((*started_a)->Wait().ok());
  ASSERT_TRUE((*started_a)->Wait().ok()) << "a second Wait is a no-op";
  EXPECT_TRUE(torch::equal(a.cpu(), Iota(64, torch::kFloat32, torch::kCPU) * n + n * (n - 1) / 2.0f));
  EXPECT_TRUE(torch::equal(out.cpu(), (Iota(8, torch::kFloat64, torch::kCPU) + r * 8) * (n * (n + 1) / 2.0)));
  EXPECT_EQ(between.cpu()[0].item<float>(), n);
}

// One ring step, as ring attention takes it: every rank sends its block to the next rank
// and receives the previous rank's, at once (a 1-rank ring sends to itself).
TEST_P(CommunicatorConformance, SendRecvPassesBlocksAroundARing) {
  const int r = comm_->rank(), n = comm_->size();
  for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kInt64}) {
    auto block = (Iota(37, dtype, device()) + 1000 * r).contiguous();
    auto got = torch::empty_like(block);
    for (int step = 1; step <= n; ++step) {
      ASSERT_TRUE(comm_->SendRecv(block, (r + 1) % n, got, (r - 1 + n) % n).ok());
      const int from = ((r - step) % n + n) % n;  // whose block arrives after `step` steps
      EXPECT_TRUE(torch::equal(got.cpu(), Iota(37, dtype, torch::kCPU) + 1000 * from))
          << c10::toString(dtype) << " step " << step;
      block.copy_(got);
    }
  }
}

// Started sends and receives complete at Wait; with tags, two messages between the same
// ranks are matched by tag, not by order of arrival (NCCL: tag 0 only).
TEST_P(CommunicatorConformance, StartedSendsAndReceivesMatchByPeerAndTag) {
  const int r = comm_->rank(), n = comm_->size();
  const int to = (r + 1) % n, from = (r - 1 + n) % n;
  const bool tags = comm_->backend() != "nccl";
  auto first = (Iota(5, torch::kFloat64, device()) + 10 * r).contiguous();
  auto second = (Iota(9, torch::kFloat64, device()) - 10 * r).contiguous();
  auto got_first = torch::empty_like(first), got_second = torch::empty_like(second);
  if (tags) {
    // Receives posted in the opposite order of the sends.
    auto r2 = comm_->StartRecv(got_second, from, 2);
    auto r1 = comm_->StartRecv(got_first, from, 1);
    ASSERT_TRUE(r1.ok() && r2.ok()) << r1.status() << r2.status();
    auto s1 = comm_->StartSend(first, to, 1);
    auto s2 = comm_->StartSend(second, to, 2);
    ASSERT_TRUE(s1.ok() && s2.ok()) << s1.status() << s2.status();
    for (auto* p : {&*s1, &*s2, &*r1, &*r2}) ASSERT_TRUE((*p)->Wait().ok());
  } else {
    ASSERT_TRUE(comm_->SendRecv(first, to, got_first, from).ok());
    ASSERT_TRUE(comm_->SendRecv(second, to, got_second, from).ok());
  }
  EXPECT_TRUE(torch::equal(got_first.cpu(), Iota(5, torch::kFloat64, torch::kCPU) + 10 * from));
  EXPECT_TRUE(torch::equal(got_second.cpu(), Iota(9, torch::kFloat64, torch::kCPU) - 10 * from));
}

// Ring attention's step: several tensors of other dtypes and sizes to the next rank and from
// the previous, started together; a second step started before the first is waited for (the
// backward's key/value and gradient blocks) matches by tag base on MPI, by order on NCCL.
TEST_P(CommunicatorConformance, StartedRingStepsOfSeveralTensors) {
  const int r = comm_->rank(), n = comm_->size();
  const int to = (r + 1) % n, from = (r - 1 + n) % n;
  std::vector<torch::Tensor> kv = {(Iota(7, torch::kFloat32, device()) + 100 * r).contiguous(),
                                   (Iota(3, torch::kFloat64, device()) - 100 * r).contiguous()};
  std::vector<torch::Tensor> grads = {torch::full({5}, static_cast<float>(r), torch::TensorOptions().device(device()))};
  std::vector<torch::Tensor> got_kv = {torch::empty_like(kv[0]), torch::empty_like(kv[1])};
  std::vector<torch::Tensor> got_grads = {torch::empty_like(grads[0])};
  auto first = comm_->StartSendRecv(kv, to, got_kv, from, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = comm_->StartSendRecv(grads, to, got_grads, from, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE((*second)->Wait().ok());
  ASSERT_TRUE((*first)->Wait().ok());
  EXPECT_TRUE(torch::equal(got_kv[0].cpu(), Iota(7, torch::kFloat32, torch::kCPU) + 100 * from));
  EXPECT_TRUE(torch::equal(got_kv[1].cpu(), Iota(3, torch::kFloat64, torch::kCPU) - 100 * from));
  EXPECT_EQ(got_grads[0].cpu()[4].item<float>(), from);
  auto mismatched = comm_->StartSendRecv(kv, to, got_grads, from, 0);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find("one receive per send"), std::string::npos) << mismatched.status();
}

// Blocking pairs: even ranks send then receive, odd ranks receive then send.
TEST_P(CommunicatorConformance, BlockingSendAndRecvBetweenPairs) {
  const int r = comm_->rank(), n = comm_->size();
  if (n % 2 != 0) GTEST_SKIP() << "pairs need an even number of ranks";
  const int peer = r ^ 1;
  auto mine = torch::full({11}, static_cast<float>(r), torch::TensorOptions().device(device()));
  auto theirs = torch::empty_like(mine);
  if (r % 2 == 0) {
    ASSERT_TRUE(comm_->Send(mine, peer).ok());
    ASSERT_TRUE(comm_->Recv(theirs, peer).ok());
  } else {
    ASSERT_TRUE(comm_->Recv(theirs, peer).ok());
    ASSERT_TRUE(comm_->Send(mine, peer).ok());
  }
  EXPECT_EQ(theirs.cpu()[10].item<float>(), peer);
}

TEST_P(CommunicatorConformance, BadPointToPointArgumentsAreRejectedLocally) {
  const int n = comm_->size();
  auto x = torch::zeros({4}, torch::TensorOptions().device(device()));
  auto no_peer = comm_->StartSend(x, n);
  ASSERT_FALSE(no_peer.ok());
  EXPECT_NE(no_peer.status().message().find("peer " + std::to_string(n) + " is not a rank"), std::string::npos)
      << no_peer.status();
  EXPECT_FALSE(comm_->StartRecv(x, -1).ok());
  EXPECT_FALSE(comm_->StartSend(x, 0, -3).ok());
  auto strided = torch::zeros({4, 4}, x.options()).t();
  EXPECT_FALSE(comm_->StartSend(strided, 0).ok());
  auto same = comm_->SendRecv(x, 0, x, 0);
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.message().find("share memory"), std::string::npos) << same;
}

// Every backend's collectives take CPU tensors: the data plane's control messages (a layout
// check's counts, a failure flag) are CPU tensors also when the data plane is NCCL, which
// moves them through the GPU. Point-to-point transfers are not held to this.
TEST_P(CommunicatorConformance, CollectivesTakeCpuTensors) {
  const int r = comm_->rank(), n = comm_->size();
  auto count = torch::tensor({int64_t{10} * r, int64_t{7}}, torch::kInt64);
  ASSERT_TRUE(comm_->AllReduce(count, ReduceOp::kMax).ok());
  EXPECT_EQ(count[0].item<int64_t>(), 10 * (n - 1));
  EXPECT_EQ(count[1].item<int64_t>(), 7);
  EXPECT_FALSE(count.is_cuda());
  auto flag = torch::full({1}, static_cast<double>(r == 0 ? 3 : 1), torch::kFloat64);
  ASSERT_TRUE(comm_->Broadcast(flag, 0).ok());
  EXPECT_EQ(flag.item<double>(), 3.0);
  auto in = torch::full({2}, static_cast<float>(r), torch::kFloat32), out = torch::empty({2 * n}, torch::kFloat32);
  ASSERT_TRUE(comm_->AllGather(in, out).ok());
  for (int src = 0; src < n; ++src) EXPECT_EQ(out[2 * src + 1].item<float>(), static_cast<float>(src));
  auto mine = torch::empty({2}, torch::kFloat32);
  ASSERT_TRUE(comm_->ReduceScatter(torch::ones({2 * n}, torch::kFloat32), mine, ReduceOp::kSum).ok());
  EXPECT_EQ(mine[1].item<float>(), static_cast<float>(n));
}

TEST_P(CommunicatorConformance, BroadcastStringReachesEveryRank) {
  const int n = comm_->size();
  const int root = n - 1;
  std::string text = comm_->rank() == root ? std::string("crc32c:0a1b2c3d\0after a NUL", 27) : "stale";
  ASSERT_TRUE(BroadcastString(*comm_, text, root).ok());
  EXPECT_EQ(text, std::string("crc32c:0a1b2c3d\0after a NUL", 27));
  std::string empty = comm_->rank() == 0 ? "" : "not empty";
  ASSERT_TRUE(BroadcastString(*comm_, empty, 0).ok());
  EXPECT_EQ(empty, "");
}

}  // namespace
}  // namespace dancegrpo::hpc
