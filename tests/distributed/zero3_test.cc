// ZeRO-3 = ZeRO-2 = one process (under mpirun with 1, 2 and 4 ranks), with and without
// sequence parallelism and freezing; the on-policy ratio stays exactly 1; a ZeRO-3 run
// killed and resumed ends bit-identical; checkpoints move between stages and rank counts.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/trainable.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "tests/tiny_dit_trainer.h"

namespace dancegrpo {
namespace {

using testing::Masters;
using testing::RelativeDiff;

std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {120}); }

TrainerConfig Config() {
  auto c = testing::TinyDitConfig();
  c.seed = 11;
  c.timestep_fraction = 0.5;
  return c;
}

std::unique_ptr<Trainer> Make(const TrainerConfig& c, std::shared_ptr<hpc::Communicator> world) {
  auto t = testing::MakeTinyDitTrainer(c, std::move(world));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::string Dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/zero3_" + name;
}

TEST(Zero3, ShardsTheBlocksAndKeepsOnlyItsSlice) {
  auto world = World();
  auto c = Config();
  c.zero_stage = 3;
  auto t = Make(c, world);
  ASSERT_TRUE(t);
  auto* sharded = t->sharded_parameters();
  ASSERT_NE(sharded, nullptr);
  int64_t block_elements = 0;
  for (const auto& p : t->policy().named_parameters()) {
    if (p.key().rfind("blocks.", 0) == 0) {
      EXPECT_EQ(p.value().numel(), 0) << p.key() << " is held whole between uses";
    } else {
      EXPECT_GT(p.value().numel(), 0) << p.key() << " (small, replicated)";
    }
  }
  for (const auto& u : sharded->units()) {
    block_elements += u.total;
    EXPECT_EQ(u.shard_size, (u.total + world->size() - 1) / world->size());
    EXPECT_EQ(u.compute.numel(), u.shard_size);
  }
  // fp32 on the CPU: the compute slice is the master itself, nothing else is kept.
  const int64_t slices = [&] {
    int64_t n = 0;
    for (const auto& u : sharded->units()) n += u.shard_size;
    return n;
  }();
  EXPECT_EQ(sharded->resident_bytes(), 4 * slices);
  EXPECT_LE(slices, block_elements / world->size() + static_cast<int64_t>(sharded->units().size()));
  // A rollout (no gradients) gathers every block once per forward and frees it again; every
  // block after the first arrives by prefetch (started during the previous block).
  const int64_t before = sharded->gathers();
  ASSERT_TRUE(t->Step().ok());
  EXPECT_GT(sharded->gathers(), before);
  EXPECT_GT(sharded->prefetches(), 0);
  for (const auto& p : t->policy().named_parameters())
    if (p.key().rfind("blocks.", 0) == 0) {
      EXPECT_EQ(p.value().numel(), 0) << p.key() << " was not released";
    }
}

TEST(Zero3, EqualsZero2AndOneProcessWithExactRatio) {
  auto world = World();
  auto c = Config();
  c.optimizer.ema = true;
  auto single = Make(c, nullptr);
  auto zero2 = Make(c, world);
  auto z3 = c;
  z3.zero_stage = 3;
  auto zero3 = Make(z3, world);
  ASSERT_TRUE(single && zero2 && zero3);
  std::vector<IterationMetrics> m3;
  ASSERT_TRUE(single->Run(nullptr).ok());
  ASSERT_TRUE(zero2->Run(nullptr).ok());
  ASSERT_TRUE(zero3->Run([&](const IterationMetrics& m) { m3.push_back(m); }).ok());
  EXPECT_EQ(m3[0].update.ratio_min, 1.0);
  EXPECT_EQ(m3[0].update.ratio_max, 1.0);
  const auto reference = Masters(*single);
  // Same sums over the same gradients; only the order of fp32 additions differs (the
  // gradient norm over other partitions, checkpointed recompute): kEquivalenceTolerance.
  EXPECT_LE(RelativeDiff(Masters(*zero3), Masters(*zero2)), testing::kEquivalenceTolerance);
  EXPECT_LE(RelativeDiff(Masters(*zero3), reference), testing::kEquivalenceTolerance);
  // The EMA lives in the same slices: gathered whole, it matches ZeRO-2's.
  auto ema3 = zero3->optimizer().GatherEma(), ema2 = zero2->optimizer().GatherEma();
  ASSERT_TRUE(ema3.ok() && ema2.ok());
  ASSERT_EQ(ema3->size(), ema2->size());
  for (size_t i = 0; i < ema2->size(); ++i) {
    ASSERT_EQ((*ema3)[i].sizes(), (*ema2)[i].sizes()) << i;
    EXPECT_LE(RelativeDiff((*ema3)[i], (*ema2)[i]), testing::kEquivalenceTolerance) << i;
  }
  auto initial = Make(c, nullptr);
  EXPECT_GT(RelativeDiff(reference, Masters(*initial)), 1e-4) << "the runs moved the weights";
}

// ZeRO-3 (sharded blocks, gathered one at a time, trained with activation checkpointing, so
// every attention runs forward twice) with Ulysses, USP and ring attention alone.
TEST(Zero3, WithSequenceParallelismEqualsOneProcess) {
  auto world = World();
  if (world->size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  auto c = Config();
  c.iterations = 1;
  auto single = Make(c, nullptr);
  ASSERT_TRUE(single && single->Run(nullptr).ok());
  const int sp = world->size();
  for (int u = sp; u >= 1; u /= 2) {  // the tiny DiT's 4 heads: Ulysses sp, ..., ring alone
    SCOPED_TRACE(::testing::Message() << "sp " << sp << ", Ulysses " << u << " x ring " << sp / u);
    auto z3 = c;
    z3.zero_stage = 3;
    z3.sequence_parallel = sp;
    z3.ulysses = u;
    auto zero3 = Make(z3, world);
    ASSERT_TRUE(zero3);
    std::vector<IterationMetrics> m3;
    ASSERT_TRUE(zero3->Run([&](const IterationMetrics& m) { m3.push_back(m); }).ok());
    EXPECT_EQ(m3[0].update.ratio_min, 1.0);
    EXPECT_EQ(m3[0].update.ratio_max, 1.0);
    EXPECT_LE(RelativeDiff(Masters(*zero3), Masters(*single)), testing::kEquivalenceTolerance);
  }
}

TEST(Zero3, FrozenBlocksStayShardedAndMatchZero2) {
  auto world = World();
  auto c = Config();
  c.trainable = "blocks.1,head";
  auto zero2 = Make(c, world);
  auto z3 = c;
  z3.zero_stage = 3;
  auto zero3 = Make(z3, world);
  ASSERT_TRUE(zero2 && zero3);
  int frozen_units = 0;
  for (const auto& u : zero3->sharded_parameters()->units()) {
    if (u.trained) continue;
    ++frozen_units;
    EXPECT_FALSE(u.master.defined()) << "a frozen unit keeps no master";
    EXPECT_FALSE(u.grad.defined()) << "a frozen unit keeps no gradient";
  }
  EXPECT_GT(frozen_units, 0);
  EXPECT_EQ(zero3->optimizer().total_elements(), zero2->optimizer().total_elements());
  ASSERT_TRUE(zero2->Run(nullptr).ok());
  ASSERT_TRUE(zero3->Run(nullptr).ok());
  EXPECT_LE(RelativeDiff(Masters(*zero3), Masters(*zero2)), testing::kEquivalenceTolerance);
}

TEST(Zero3, Bf16KeepsTheRatioExactlyOne) {
  auto world = World();
  auto c = Config();
  c.iterations = 1;
  c.zero_stage = 3;
  c.compute_dtype = torch::kBFloat16;
  auto t = Make(c, world);
  ASSERT_TRUE(t);
  auto m = t->Step();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->update.ratio_min, 1.0);
  EXPECT_EQ(m->update.ratio_max, 1.0);
  for (const auto& u : t->sharded_parameters()->units()) {
    EXPECT_EQ(u.compute.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(u.compute, u.master.to(torch::kBFloat16))) << "compute slice = rounded master";
  }
}

TEST(Zero3, KilledAndResumedEndsBitIdenticalAndMovesBetweenStages) {
  auto world = World();
  auto c = Config();
  c.zero_stage = 3;
  c.iterations = 2;
  auto whole = Make(c, world);
  ASSERT_TRUE(whole && whole->Run(nullptr).ok());

  const std::string dir = Dir("resume");
  auto first = c;
  first.iterations = 1;
  auto a = Make(first, world);
  ASSERT_TRUE(a && a->Run(nullptr).ok());
  auto path = SaveCheckpoint(*a, dir, 3);
  ASSERT_TRUE(path.ok()) << path.status();
  a.reset();  // the "kill": nothing survives but the file

  auto b = Make(c, world);
  ASSERT_TRUE(b);
  auto report = LoadCheckpoint(*b, *path);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(b->Run(nullptr).ok());
  EXPECT_TRUE(torch::equal(Masters(*b), Masters(*whole))) << "resumed != uninterrupted";
  EXPECT_TRUE(torch::equal(b->optimizer().exp_avg_sq(), whole->optimizer().exp_avg_sq()));

  // The same file resumes under ZeRO-2 and in one process (another rank count): the same
  // weights, and the next iteration agrees with the ZeRO-3 run to fp32 rounding.
  auto z2 = c;
  z2.zero_stage = 2;
  auto on_zero2 = Make(z2, world);
  auto alone = Make(z2, nullptr);
  ASSERT_TRUE(on_zero2 && alone);
  ASSERT_TRUE(LoadCheckpoint(*on_zero2, *path).ok());
  ASSERT_TRUE(LoadCheckpoint(*alone, *path).ok());
  EXPECT_TRUE(torch::equal(Masters(*alone), Masters(*on_zero2)));
  ASSERT_TRUE(on_zero2->Run(nullptr).ok());
  ASSERT_TRUE(alone->Run(nullptr).ok());
  EXPECT_LE(RelativeDiff(Masters(*on_zero2), Masters(*whole)), testing::kEquivalenceTolerance);
  EXPECT_LE(RelativeDiff(Masters(*alone), Masters(*whole)), testing::kEquivalenceTolerance);

  // And a ZeRO-2 checkpoint resumes under ZeRO-3.
  auto z2_path = SaveCheckpoint(*alone, Dir("resume_z2_r" + std::to_string(world->rank())), 3);
  ASSERT_TRUE(z2_path.ok()) << z2_path.status();
  auto back = Make(c, world);
  ASSERT_TRUE(back && LoadCheckpoint(*back, *z2_path).ok());
  EXPECT_TRUE(torch::equal(Masters(*back), Masters(*alone)));
}

// Weights stored in bf16 are read straight into a bf16 model (inputs.h); sharding keeps them
// exactly: the fp32 masters are their widening, the gathered block their values.
TEST(Zero3, ShardsBf16WeightsAsStored) {
  auto world = World();
  torch::manual_seed(4);
  models::VideoDit dit(*models::DitPreset("tiny"));
  dit.to(torch::kBFloat16);
  std::vector<torch::Tensor> before;
  for (const auto& p : dit.blocks[1]->parameters()) before.push_back(p.detach().clone());
  auto sharded = ShardPolicy(dit, "", world, torch::kBFloat16, torch::kCPU);
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  for (const auto& u : (*sharded)->units())
    EXPECT_TRUE(torch::equal(u.master.to(torch::kBFloat16), u.compute)) << "master = widened stored value";
  ASSERT_TRUE((*sharded)->Gather(1).ok());
  const auto after = dit.blocks[1]->parameters();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(after[i], before[i])) << i;
  (*sharded)->Release(1);
  EXPECT_EQ(dit.blocks[1]->parameters()[0].numel(), 0);
}

TEST(Zero3, RefusesAModelWithoutBlocksAndKlWithAClearMessage) {
  auto c = Config();
  c.zero_stage = 4;
  auto t = testing::MakeTinyDitTrainer(c, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("--zero_stage=4"), std::string::npos) << t.status();
  c.zero_stage = 3;
  c.kl_beta = 0.1;
  t = testing::MakeTinyDitTrainer(c, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("--zero_stage=2"), std::string::npos) << t.status();
}

}  // namespace
}  // namespace dancegrpo
