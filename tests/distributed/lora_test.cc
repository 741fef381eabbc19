// LoRA in the trainer, under mpirun with 1, 2 and 4 ranks: only the adapters train and the base
// keeps its bits; the first rollout is the base's, bit for bit; the on-policy ratio is exactly
// 1; N ranks (ZeRO-2, ZeRO-3, sequence parallel) = one process; the KL reference is the base
// for free, also under ZeRO-3; resume is bit-identical and refuses another base; a checkpoint's
// adapters exported to a file and merged equal the in-memory merge.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "models/lora.h"
#include "models/safetensors.h"
#include "tests/tiny_dit_trainer.h"

namespace dancegrpo {
namespace {

using testing::Masters;
using testing::RelativeDiff;

std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {120}); }

TrainerConfig Config() {
  auto c = testing::TinyDitConfig();
  c.seed = 13;
  c.timestep_fraction = 0.5;
  c.lora.rank = 4;
  c.lora.alpha = 8;
  // lr as the other equivalence tests: differences are fp32 rounding of the summation order, which
  // the Adam step scales with lr (1e-2 gives 1.4e-4 relative, 1e-3 kEquivalenceTolerance).
  c.optimizer.lr = 1e-3;
  return c;
}

std::unique_ptr<Trainer> Make(const TrainerConfig& c, std::shared_ptr<hpc::Communicator> world) {
  auto t = testing::MakeTinyDitTrainer(c, std::move(world));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::string Dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/lora_" + name;
}

TEST(LoraTrainer, TrainsOnlyTheAdaptersAndStartsFromTheBaseExactly) {
  auto c = Config();
  auto lora = Make(c, nullptr);
  auto full_config = c;
  full_config.lora = {};
  full_config.lora.rank = 0;
  auto full = Make(full_config, nullptr);
  ASSERT_TRUE(lora && full);
  int64_t adapter_elements = 0;
  for (const auto& p : lora->trained_parameters()) {
    EXPECT_TRUE(models::IsLoraParameter(p.key())) << p.key() << " is trained but is not an adapter";
    adapter_elements += p.value().numel();
  }
  EXPECT_EQ(lora->optimizer().total_elements(), adapter_elements) << "only the adapters have optimizer state";
  EXPECT_EQ(lora->trained_parameters().size(), 2u * 10 * 2) << "10 adapted linears a block, 2 blocks";
  std::map<std::string, torch::Tensor> base;
  for (const auto& p : lora->policy().named_parameters())
    if (!models::IsLoraParameter(p.key())) base[p.key()] = p.value().detach().clone();

  auto m_lora = lora->Step();
  auto m_full = full->Step();
  ASSERT_TRUE(m_lora.ok() && m_full.ok());
  // B = 0: the first rollout is the base's, so every reward is the full fine-tuning run's.
  EXPECT_EQ(m_lora->reward_mean, m_full->reward_mean);
  EXPECT_EQ(m_lora->reward_std, m_full->reward_std);
  EXPECT_EQ(m_lora->update.ratio_min, 1.0);
  EXPECT_EQ(m_lora->update.ratio_max, 1.0);
  ASSERT_TRUE(lora->Step().ok());
  for (const auto& p : lora->policy().named_parameters()) {
    if (models::IsLoraParameter(p.key())) continue;
    EXPECT_TRUE(torch::equal(p.value(), base[p.key()])) << p.key() << " (base) changed";
    EXPECT_FALSE(p.value().grad().defined()) << p.key() << " kept a gradient";
  }
  int moved_b = 0;
  for (const auto& p : lora->trained_parameters())
    if (p.key().find("lora_B") != std::string::npos) moved_b += p.value().abs().max().item<float>() > 0;
  EXPECT_EQ(moved_b, 20) << "every B left zero";
}

TEST(LoraTrainer, NRanksEqualOneProcessUnderZero2Zero3AndSequenceParallel) {
  auto world = World();
  auto c = Config();
  auto single = Make(c, nullptr);
  auto zero2 = Make(c, world);
  auto z3 = c;
  z3.zero_stage = 3;
  auto zero3 = Make(z3, world);
  ASSERT_TRUE(single && zero2 && zero3);
  std::vector<IterationMetrics> m2, m3;
  ASSERT_TRUE(single->Run(nullptr).ok());
  ASSERT_TRUE(zero2->Run([&](const IterationMetrics& m) { m2.push_back(m); }).ok());
  ASSERT_TRUE(zero3->Run([&](const IterationMetrics& m) { m3.push_back(m); }).ok());
  for (const auto* m : {&m2, &m3}) {
    for (const auto& it : *m) {
      EXPECT_EQ(it.update.ratio_min, 1.0) << "iteration " << it.iteration;
      EXPECT_EQ(it.update.ratio_max, 1.0) << "iteration " << it.iteration;
    }
  }
  const auto reference = Masters(*single);
  EXPECT_LE(RelativeDiff(Masters(*zero2), reference), testing::kEquivalenceTolerance);
  EXPECT_LE(RelativeDiff(Masters(*zero3), reference), testing::kEquivalenceTolerance);
  // ZeRO-3 keeps the frozen base sharded: every block has a frozen unit without master or gradient.
  int frozen = 0;
  for (const auto& u : zero3->sharded_parameters()->units()) {
    if (u.trained) continue;
    ++frozen;
    EXPECT_FALSE(u.master.defined());
    EXPECT_EQ(u.compute.numel(), u.shard_size) << "1/N of the base per rank";
  }
  EXPECT_EQ(frozen, 2);
  if (world->size() % 2 == 0) {
    auto sp = c;
    sp.sequence_parallel = 2;
    auto ulysses = Make(sp, world);
    ASSERT_TRUE(ulysses && ulysses->Run(nullptr).ok());
    EXPECT_LE(RelativeDiff(Masters(*ulysses), reference), testing::kEquivalenceTolerance);
  }
}

TEST(LoraTrainer, TheKlReferenceIsTheBaseForFreeUnderZero3) {
  auto world = World();
  auto c = Config();
  c.kl_beta = 0.5;
  c.zero_stage = 3;
  auto t = Make(c, world);
  ASSERT_TRUE(t);
  std::vector<IterationMetrics> m;
  ASSERT_TRUE(t->Run([&](const IterationMetrics& x) { m.push_back(x); }).ok());
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].update.kl_to_reference, 0.0) << "B = 0 at the first update: the policy is its base";
  EXPECT_GT(m[1].update.kl_to_reference, 0.0) << "after one step the adapters move it away";
  // The same run in one process (ZeRO-2 there) gives the same weights.
  auto z2 = c;
  z2.zero_stage = 2;
  auto single = Make(z2, nullptr);
  ASSERT_TRUE(single && single->Run(nullptr).ok());
  EXPECT_LE(RelativeDiff(Masters(*t), Masters(*single)), testing::kEquivalenceTolerance);
}

TEST(LoraTrainer, ResumesBitIdenticalAndRefusesAnotherBase) {
  auto world = World();
  auto c = Config();
  c.base_weights = "test base";
  c.base_checksum = "crc32c:00000001";
  auto whole = Make(c, world);
  ASSERT_TRUE(whole && whole->Run(nullptr).ok());
  auto first = c;
  first.iterations = 1;
  auto a = Make(first, world);
  ASSERT_TRUE(a && a->Run(nullptr).ok());
  auto path = SaveCheckpoint(*a, Dir("resume"), 3);
  ASSERT_TRUE(path.ok()) << path.status();
  a.reset();
  auto b = Make(c, world);
  ASSERT_TRUE(b && LoadCheckpoint(*b, *path).ok());
  ASSERT_TRUE(b->Run(nullptr).ok());
  EXPECT_TRUE(torch::equal(Masters(*b), Masters(*whole))) << "resumed != uninterrupted";
  EXPECT_TRUE(torch::equal(b->optimizer().exp_avg(), whole->optimizer().exp_avg()));

  auto info = ReadCheckpointLora(*path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->lora.rank, 4);
  EXPECT_EQ(info->lora.alpha, 8);
  EXPECT_EQ(info->base_checksum, "crc32c:00000001");
  EXPECT_EQ(info->base_weights, "test base");

  auto other = c;
  other.base_checksum = "crc32c:00000002";
  auto wrong = Make(other, world);
  ASSERT_TRUE(wrong);
  auto refused = LoadCheckpoint(*wrong, *path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("other base weights: test base with checksum crc32c:00000001"),
            std::string::npos)
      << refused.status();
  auto rank8 = c;
  rank8.lora.rank = 8;
  auto wider = Make(rank8, world);
  ASSERT_TRUE(wider);
  EXPECT_FALSE(LoadCheckpoint(*wider, *path).ok()) << "another rank has other adapter shapes";
}

TEST(LoraTrainer, ExportedAndMergedAdaptersEqualTheInMemoryMerge) {
  auto world = World();
  auto c = Config();
  auto t = Make(c, world);
  ASSERT_TRUE(t && t->Run(nullptr).ok());
  const std::string dir = Dir("export_r" + std::to_string(world->rank()));
  auto path = SaveCheckpoint(*t, Dir("export"), 3);
  ASSERT_TRUE(path.ok()) << path.status();
  auto params = ReadCheckpointParameters(*path);
  ASSERT_TRUE(params.ok()) << params.status();
  auto layers = models::LoraLayers(*params, c.lora.alpha);
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  ASSERT_TRUE(models::WriteSafetensors(dir + "/adapter.safetensors", models::LoraFileTensors(*layers)).ok());
  auto adapters = models::ReadLoraFile(dir + "/adapter.safetensors");
  ASSERT_TRUE(adapters.ok()) << adapters.status();

  // The base: a fresh trainer's policy without adapters (the same seed draws the same base).
  auto base_config = c;
  base_config.lora.rank = 0;
  auto base = Make(base_config, nullptr);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : base->policy().named_parameters()) named.emplace_back(p.key(), p.value().detach());
  auto merged = models::MergeLora(named, *adapters);
  ASSERT_TRUE(merged.ok()) << merged.status();

  // In memory: the trained model in one process (ZeRO-2: whole), merged.
  auto alone = Make(c, nullptr);
  ASSERT_TRUE(alone && LoadCheckpoint(*alone, *path).ok());
  const auto in_memory = models::MergedParameters(alone->policy());
  ASSERT_EQ(merged->size(), in_memory.size());
  int changed = 0;
  for (size_t i = 0; i < in_memory.size(); ++i) {
    ASSERT_EQ((*merged)[i].first, in_memory[i].first);
    EXPECT_TRUE(torch::allclose((*merged)[i].second, in_memory[i].second, 1e-6, 1e-7)) << in_memory[i].first;
    changed += !torch::equal(in_memory[i].second, named[i].second);
  }
  EXPECT_EQ(changed, 20) << "every adapted layer's weight moved in the merge";
}

TEST(LoraTrainer, ConfigMustDescribeTheAdapters) {
  auto c = Config();
  c.trainable = "blocks.1";
  auto t = testing::MakeTinyDitTrainer(c, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--lora_targets"), std::string::npos) << t.status();
}

}  // namespace
}  // namespace dancegrpo
