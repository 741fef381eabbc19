// N ranks == 1 rank: a training run on the world (1, 2 or 4 ranks under mpirun) gives the
// parameters that a single-process run of the same global batch gives, within 1e-6
// relative; each rank checks this itself by also running the single-process trainer.
// Also: shared initial noise is identical inside a group, different across groups, and
// the same bits whatever the world size.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "world/toy_world.h"
#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "models/mlp_velocity.h"
#include "models/text/text_encoder.h"
#include "tests/tiny_dit_trainer.h"

namespace dancegrpo {
namespace {

const std::vector<int64_t> kShape = {2, 1, 2, 2};
constexpr int kTargets = 3;

std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {120}); }

std::unique_ptr<Trainer> MakeTrainer(const TrainerConfig& c, std::shared_ptr<hpc::Communicator> world) {
  torch::manual_seed(c.seed);  // identical initial weights on every rank and in the reference
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = kTargets;
  auto policy = std::make_shared<models::MlpVelocity>(mc);
  {
    torch::NoGradGuard ng;  // a non-zero head, so every step moves every parameter
    for (auto& p : policy->parameters()) p.normal_(0.0, 0.2);
  }
  auto reference = c.kl_beta > 0 ? std::make_shared<models::MlpVelocity>(mc) : nullptr;
  auto t = Trainer::Create(c, policy, reference, std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, kShape, 3), 1.0}},
                           toy::TargetPrompts(kTargets), world);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TrainerConfig BaseConfig() {
  TrainerConfig c;
  c.seed = 5;
  c.iterations = 2;
  c.prompts_per_iteration = 4;
  c.group_size = 4;
  c.steps = 6;
  c.micro_batch = 2;
  c.timestep_fraction = 0.6;
  c.clip_range = 0.2;
  c.optimizer.lr = 1e-2;
  c.latent_shape = kShape;
  return c;
}

void ExpectSameParameters(Trainer& distributed, Trainer& single) {
  auto a = distributed.policy().parameters(), b = single.policy().parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = (a[i] - b[i]).norm().item<double>(), scale = b[i].norm().item<double>();
    EXPECT_LE(diff, 1e-6 * scale) << "parameter " << i << ": |diff| " << diff << " vs |p| " << scale;
  }
}

void RunBoth(const TrainerConfig& c) {
  auto world = World();
  auto distributed = MakeTrainer(c, world);
  auto single = MakeTrainer(c, nullptr);
  ASSERT_TRUE(distributed && single);
  std::vector<IterationMetrics> md, ms;
  ASSERT_TRUE(distributed->Run([&](const IterationMetrics& m) { md.push_back(m); }).ok());
  ASSERT_TRUE(single->Run([&](const IterationMetrics& m) { ms.push_back(m); }).ok());
  ExpectSameParameters(*distributed, *single);
  ASSERT_EQ(md.size(), ms.size());
  for (size_t i = 0; i < md.size(); ++i) {
    // Iteration 0 sees the same bits; later iterations see fp32-rounding-close weights.
    EXPECT_NEAR(md[i].reward_mean[0], ms[i].reward_mean[0], 1e-6 * ms[i].reward_mean[0]);
    EXPECT_NEAR(md[i].reward_std[0], ms[i].reward_std[0], 1e-6 * ms[i].reward_std[0]);
    EXPECT_EQ(md[i].update.trained_pairs, ms[i].update.trained_pairs);
    EXPECT_EQ(md[i].update.optimizer_steps, ms[i].update.optimizer_steps);
    EXPECT_NEAR(md[i].update.grad_norm, ms[i].update.grad_norm, 1e-5 * ms[i].update.grad_norm);
  }
}

TEST(TrainerEquivalence, GroupsOnWholeRanksWithGradientAccumulation) {
  auto c = BaseConfig();
  c.grad_accum_samples = 8;  // two optimizer steps per iteration
  RunBoth(c);
}

TEST(TrainerEquivalence, GroupsSpanningRanks) {
  auto c = BaseConfig();
  c.prompts_per_iteration = 1;
  c.group_size = 8;  // 8 samples: on 4 ranks a group spans all of them
  RunBoth(c);
}

TEST(TrainerEquivalence, GlobalNormalisationBestOfNEmaAndKl) {
  auto c = BaseConfig();
  c.global_normalization = true;
  c.best_of_n = 2;
  c.optimizer.ema = true;
  c.kl_beta = 0.05;
  RunBoth(c);
}

TEST(TrainerEquivalence, PooledStdOverGroupsOnAllRanks) {
  auto c = BaseConfig();  // 4 groups: on 2 or 4 ranks each rank holds only some of them
  c.pooled_std = true;
  RunBoth(c);
}

// Sequence parallelism wired through the trainer: a tiny DiT split over sp ranks (dp = world /
// sp) trains to the same parameters as one process.
std::unique_ptr<Trainer> MakeDitTrainer(const TrainerConfig& c, std::shared_ptr<hpc::Communicator> world) {
  auto t = testing::MakeTinyDitTrainer(c, std::move(world));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// The sequence-parallel layouts (sp, Ulysses degree) a world of n ranks runs for the tiny DiT
// (4 heads): Ulysses alone, USP (Ulysses x ring) and ring alone, at every sp dividing n.
std::vector<std::pair<int, int>> Layouts(int n) {
  std::vector<std::pair<int, int>> out;
  for (int sp = 2; sp <= n; sp *= 2)
    if (n % sp == 0)
      for (int u = sp; u >= 1; u /= 2) out.push_back({sp, u});
  return out;
}

TrainerConfig SequenceParallelConfig() {
  auto c = BaseConfig();
  c.latent_shape = {4, 2, 4, 4};  // 2 x 2 x 2 = 8 tokens
  c.prompts_per_iteration = 2;
  c.group_size = 2;
  c.iterations = 1;
  c.optimizer.lr = 1e-3;
  return c;
}

// The gradients agree to fp32 rounding (dit_seqpar_test, dit_usp_test); AdamW's first step maps
// each gradient element g to about lr * g / (|g| + eps), which magnifies that rounding for
// elements near eps, hence 1e-5 here.
void ExpectSameDitParameters(Trainer& distributed, Trainer& single) {
  auto a = distributed.policy().named_parameters();
  for (const auto& p : single.policy().named_parameters()) {
    const double diff = (a[p.key()] - p.value()).norm().item<double>(), scale = p.value().norm().item<double>();
    EXPECT_LE(diff, 1e-5 * scale) << p.key();
  }
}

// One whole GRPO iteration (rollout, rewards, advantages, clipped update) with Ulysses, ring
// attention and USP equals one process without sequence parallelism.
TEST(TrainerEquivalence, SequenceParallelDitInEveryLayout) {
  auto world = World();
  if (world->size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  const auto c = SequenceParallelConfig();
  auto single = MakeDitTrainer(c, nullptr);
  ASSERT_TRUE(single && single->Run(nullptr).ok());
  for (const auto& [sp, u] : Layouts(world->size())) {
    SCOPED_TRACE(::testing::Message() << "sp " << sp << ", Ulysses " << u << " x ring " << sp / u);
    auto layout = c;
    layout.sequence_parallel = sp;
    layout.ulysses = u;
    auto distributed = MakeDitTrainer(layout, world);
    ASSERT_TRUE(distributed);
    EXPECT_EQ(distributed->ulysses(), u);
    ASSERT_TRUE(distributed->Run(nullptr).ok());
    ExpectSameDitParameters(*distributed, *single);
  }
}

// A checkpoint written under one sequence-parallel layout resumes under another (Ulysses ->
// ring alone, at another sp) and ends where an uninterrupted one-process run ends.
TEST(TrainerEquivalence, CheckpointResumesUnderAnotherSequenceParallelLayout) {
  auto world = World();
  if (world->size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  auto c = SequenceParallelConfig();
  c.iterations = 2;
  auto whole = MakeDitTrainer(c, nullptr);
  ASSERT_TRUE(whole && whole->Run(nullptr).ok());

  auto first = c;
  first.iterations = 1;
  first.sequence_parallel = 2;
  first.ulysses = 2;  // Ulysses alone
  auto a = MakeDitTrainer(first, world);
  ASSERT_TRUE(a && a->Run(nullptr).ok());
  const char* tmp = std::getenv("TEST_TMPDIR");
  auto path = SaveCheckpoint(*a, std::string(tmp ? tmp : "/tmp") + "/sp_layouts", 2);
  ASSERT_TRUE(path.ok()) << path.status();
  a.reset();

  auto second = c;
  second.sequence_parallel = world->size();
  second.ulysses = 1;  // ring attention alone over every rank
  auto b = MakeDitTrainer(second, world);
  ASSERT_TRUE(b);
  auto report = LoadCheckpoint(*b, *path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->iteration, 1);
  ASSERT_TRUE(b->Run(nullptr).ok());
  ExpectSameDitParameters(*b, *whole);
}

// bf16 compute weights with fp32 masters: N ranks train to the same masters as one process
// within bf16 tolerance. The ranks accumulate their bf16 gradients over fewer micro-batches
// before the fp32 reduce-scatter, so the summed gradient differs from one process's in bf16
// rounding (about 2^-8 relative), and AdamW's first steps (about lr * g / |g| per element)
// pass that on only where |g| is near eps. Without gradient synchronisation each rank
// would step on its own samples' gradient and the masters would differ by O(lr) almost
// everywhere, which this bound excludes. The ratio stays exactly 1 on every rank.
TEST(TrainerEquivalence, Bf16DitMatchesOneProcessToBf16Tolerance) {
  auto c = BaseConfig();
  c.latent_shape = {4, 2, 4, 4};
  c.prompts_per_iteration = 2;
  c.group_size = 4;
  c.iterations = 2;
  c.optimizer.lr = 1e-3;
  c.compute_dtype = torch::kBFloat16;
  auto world = World();
  auto distributed = MakeDitTrainer(c, world);
  auto single = MakeDitTrainer(c, nullptr);
  ASSERT_TRUE(distributed && single);
  std::vector<IterationMetrics> md;
  ASSERT_TRUE(distributed->Run([&](const IterationMetrics& m) { md.push_back(m); }).ok());
  ASSERT_TRUE(single->Run(nullptr).ok());
  EXPECT_EQ(md[0].update.ratio_min, 1.0);
  EXPECT_EQ(md[0].update.ratio_max, 1.0);
  // Every rank compares its own master shard with the same slice of the one-process masters.
  auto& opt = distributed->optimizer();
  const int64_t count = std::min(opt.shard_begin() + opt.shard_size(), opt.total_elements()) - opt.shard_begin();
  ASSERT_GT(count, 0);
  auto mine = opt.MasterShard().narrow(0, 0, count);
  auto reference = single->optimizer().MasterShard().narrow(0, opt.shard_begin(), count);
  const auto diff = (mine - reference).abs();
  const int64_t n = mine.numel();
  const double rms = diff.pow(2).mean().sqrt().item<double>();
  EXPECT_LE(diff.max().item<double>(), 2 * c.iterations * c.optimizer.lr + 1e-6) << "no element moved apart by more than its steps";
  EXPECT_LE(rms, 0.1 * c.optimizer.lr) << "RMS difference over " << n << " master values";
  for (const auto& p : distributed->policy().parameters()) ASSERT_EQ(p.scalar_type(), torch::kBFloat16);
}

TEST(SharedNoise, IdenticalInGroupDistinctAcrossGroupsIndependentOfWorldSize) {
  auto c = BaseConfig();
  c.iterations = 1;
  c.prompts_per_iteration = 2;
  c.group_size = 4;
  auto world = World();
  auto distributed = MakeTrainer(c, world);
  auto single = MakeTrainer(c, nullptr);
  ASSERT_TRUE(distributed->Step().ok());
  ASSERT_TRUE(single->Step().ok());
  // Gather every rank's initial latents x_0 into the global sample order.
  auto mine = distributed->last_trajectories().latents.select(1, 0).contiguous();
  auto all = torch::empty({world->size() * mine.numel()});
  ASSERT_TRUE(world->AllGather(mine.view(-1), all).ok());
  auto reference = single->last_trajectories().latents.select(1, 0).contiguous();
  EXPECT_TRUE(torch::equal(all.view(reference.sizes()), reference)) << "noise must not depend on the rank count";
  for (int s = 1; s < 4; ++s) EXPECT_TRUE(torch::equal(reference[s], reference[0]));
  EXPECT_FALSE(torch::equal(reference[0], reference[4]));
}

}  // namespace
}  // namespace dancegrpo
