// bf16 mixed precision through the trainer: the on-policy ratio is exactly 1 on the first
// update for batch sizes 1, 4 and 12 (rollout and update evaluate the same batch shapes in
// the same precision, and the SDE step and log-probs are fp32); the weights are bf16
// compute copies of fp32 masters that the optimizer keeps; a checkpoint round trip keeps
// the fp32 masters, not the rounded copies.
#include <torch/torch.h>

#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "models/dit/dit.h"
#include "models/text/text_encoder.h"
#include "tests/tiny_dit_trainer.h"
#include "world/toy_world.h"

namespace dancegrpo {
namespace {

std::unique_ptr<Trainer> MakeBf16Trainer(const TrainerConfig& c, std::vector<torch::Tensor>* fp32_weights = nullptr) {
  auto t = testing::MakeTinyDitTrainer(c, nullptr, fp32_weights);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TrainerConfig Bf16Config(int batch) {
  TrainerConfig c;
  c.seed = 11;
  c.iterations = 1;
  c.prompts_per_iteration = 3;
  c.group_size = 4;  // 12 samples per iteration
  c.steps = 5;
  c.micro_batch = batch;
  c.timestep_fraction = 1.0;
  c.clip_range = 0.2;
  c.optimizer.lr = 1e-3;
  c.latent_shape = {4, 2, 4, 4};
  c.compute_dtype = torch::kBFloat16;
  return c;
}

class Bf16Ratio : public ::testing::TestWithParam<int> {};

TEST_P(Bf16Ratio, IsExactlyOneOnTheFirstUpdate) {
  auto trainer = MakeBf16Trainer(Bf16Config(GetParam()));
  ASSERT_TRUE(trainer);
  for (const auto& p : trainer->policy().parameters()) ASSERT_EQ(p.scalar_type(), torch::kBFloat16);
  auto before = trainer->optimizer().MasterShard().clone();
  auto m = trainer->Step();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->update.trained_pairs, 12 * 4);
  EXPECT_EQ(m->update.ratio_min, 1.0) << "batch " << GetParam();
  EXPECT_EQ(m->update.ratio_max, 1.0) << "batch " << GetParam();
  EXPECT_EQ(m->update.clip_fraction, 0.0);
  EXPECT_EQ(m->update.skipped_steps, 0);
  // The step moved the fp32 masters, and the compute copies are the masters rounded to bf16.
  auto& opt = trainer->optimizer();
  ASSERT_TRUE(opt.keeps_master());
  EXPECT_GT((opt.MasterShard() - before).abs().max().item<double>(), 0.0);
  auto rounded = opt.Unflatten(opt.MasterShard());
  auto params = opt.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::equal(params[i], rounded[i].to(torch::kBFloat16))) << "parameter " << i;
}

INSTANTIATE_TEST_SUITE_P(BatchSizes, Bf16Ratio, ::testing::Values(1, 4, 12));

TEST(MixedPrecision, MastersStartFromTheFp32WeightsNotTheirBf16Rounding) {
  std::vector<torch::Tensor> fp32;
  auto trainer = MakeBf16Trainer(Bf16Config(4), &fp32);
  ASSERT_TRUE(trainer);
  auto& opt = trainer->optimizer();
  EXPECT_TRUE(torch::equal(opt.MasterShard().narrow(0, 0, opt.total_elements()),
                           opt.Flatten(fp32).narrow(0, 0, opt.total_elements())));
  EXPECT_GT((opt.MasterShard() - opt.MasterShard().to(torch::kBFloat16).to(torch::kFloat32)).abs().max().item<double>(),
            0.0)
      << "the masters hold more than bf16 precision";
}

TEST(MixedPrecision, Bf16TrainingMatchesFp32TrainingToBf16Tolerance) {
  auto c = Bf16Config(4);
  c.iterations = 2;
  auto bf16 = MakeBf16Trainer(c);
  c.compute_dtype = torch::kFloat32;
  auto fp32 = MakeBf16Trainer(c);
  ASSERT_TRUE(bf16 && fp32);
  auto mb = bf16->Step(), mf = fp32->Step();
  ASSERT_TRUE(mb.ok() && mf.ok());
  // The same rollout noise: rewards agree to bf16 accuracy of the velocities.
  EXPECT_NEAR(mb->reward_mean[0], mf->reward_mean[0], 0.02 * std::fabs(mf->reward_mean[0]) + 1e-3);
}

TEST(MixedPrecision, RejectsNonFiniteOrNonPositiveLearningRates) {
  for (double lr : {std::nan(""), 0.0, -1e-3, static_cast<double>(INFINITY)}) {
    auto c = Bf16Config(4);
    c.optimizer.lr = lr;
    torch::manual_seed(1);
    auto policy = std::make_shared<models::VideoDit>(*models::DitPreset("tiny"));
    auto t = Trainer::Create(c, policy, nullptr, std::make_shared<toy::OneHotPromptEncoder>(3), nullptr,
                             {{std::make_shared<toy::TargetRegionReward>(3, c.latent_shape, 3), 1.0}},
                             toy::TargetPrompts(3));
    ASSERT_FALSE(t.ok()) << "lr " << lr;
    EXPECT_NE(t.status().message().find("learning rate"), std::string::npos) << t.status();
  }
}

}  // namespace
}  // namespace dancegrpo
