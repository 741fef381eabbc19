// Partial fine-tuning (--trainable): frozen parameters keep their bits, get no gradient and no
// optimizer state, also under activation checkpointing; checkpoints hold the trained ones,
// resume continues bit for bit, evaluation overlays them on the base, and resuming with
// another selection is refused.
#include <torch/torch.h>

#include <cstdlib>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "models/dit/dit.h"
#include "tests/tiny_dit_trainer.h"

namespace dancegrpo {
namespace {

TrainerConfig Config(const std::string& trainable) {
  auto c = testing::TinyDitConfig();
  c.seed = 9;
  c.iterations = 3;
  c.steps = 5;
  c.micro_batch = 4;
  c.trainable = trainable;
  return c;
}

std::unique_ptr<Trainer> Make(const TrainerConfig& c, bool checkpointing) {
  auto t = testing::MakeTinyDitTrainer(c);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return nullptr;
  static_cast<models::VideoDit&>((*t)->policy()).set_activation_checkpointing(checkpointing);
  return *std::move(t);
}

std::string Dir(const std::string& name) {
  const std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  EXPECT_EQ(std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str()), 0);
  return d;
}

class Freezing : public ::testing::TestWithParam<bool> {};

TEST_P(Freezing, FrozenParametersKeepTheirBitsAndGetNoState) {
  auto trainer = Make(Config("blocks.1,head"), /*checkpointing=*/GetParam());
  ASSERT_TRUE(trainer);
  std::map<std::string, torch::Tensor> before;
  int64_t trained_elements = 0;
  for (const auto& p : trainer->policy().named_parameters()) before[p.key()] = p.value().detach().clone();
  for (const auto& p : trainer->trained_parameters()) {
    EXPECT_TRUE(p.key().rfind("blocks.1.", 0) == 0 || p.key().rfind("head.", 0) == 0) << p.key();
    trained_elements += p.value().numel();
  }
  EXPECT_EQ(trainer->optimizer().total_elements(), trained_elements);
  ASSERT_TRUE(trainer->Step().ok());
  ASSERT_TRUE(trainer->Step().ok());
  int changed = 0;
  for (const auto& p : trainer->policy().named_parameters()) {
    const bool trained = trainer->trained_parameters().find(p.key()) != nullptr;
    if (trained) {
      changed += !torch::equal(p.value(), before[p.key()]);
    } else {
      EXPECT_TRUE(torch::equal(p.value(), before[p.key()])) << p.key() << " is frozen";
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
      EXPECT_FALSE(p.value().grad().defined()) << p.key() << " kept a gradient";
    }
  }
  EXPECT_GT(changed, static_cast<int>(trainer->trained_parameters().size()) / 2)
      << "the trained block must learn, with activation checkpointing too";
}

INSTANTIATE_TEST_SUITE_P(ActivationCheckpointing, Freezing, ::testing::Bool());

TEST(Freezing, CheckpointsHoldTheTrainedParametersAndResumeExactly) {
  const auto c = Config("blocks.0.self_attn,head");
  auto reference = Make(c, false);
  ASSERT_TRUE(reference->Step().ok());
  const std::string dir = Dir("freeze_ckpt");
  auto path = SaveCheckpoint(*reference, dir, 0);
  ASSERT_TRUE(path.ok()) << path.status();
  ASSERT_TRUE(reference->Step().ok());

  auto resumed = Make(c, false);
  auto report = LoadCheckpoint(*resumed, *path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(resumed->iteration(), 1);
  ASSERT_TRUE(resumed->Step().ok());
  auto a = resumed->policy().named_parameters();
  for (const auto& p : reference->policy().named_parameters())
    EXPECT_TRUE(torch::equal(a[p.key()], p.value())) << p.key() << " differs after resume";

  // Evaluation loads the trained parameters over the base; the frozen ones stay the base's.
  auto base = Make(c, false);
  auto& model = base->policy();
  std::map<std::string, torch::Tensor> base_values;
  for (const auto& p : model.named_parameters()) base_values[p.key()] = p.value().detach().clone();
  ASSERT_TRUE(LoadModelWeights(*path, model).ok());
  auto saved = Make(c, false);
  ASSERT_TRUE(saved->Step().ok());  // the state the checkpoint holds: one iteration from the base
  auto expected = saved->policy().named_parameters();
  for (const auto& p : model.named_parameters()) {
    if (base->trained_parameters().find(p.key()) != nullptr) {
      EXPECT_TRUE(torch::equal(p.value(), expected[p.key()])) << p.key();
    } else {
      EXPECT_TRUE(torch::equal(p.value(), base_values[p.key()])) << p.key();
    }
  }

  // Another selection cannot resume it.
  auto other = Make(Config("head"), false);
  auto refused = LoadCheckpoint(*other, *path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--trainable"), std::string::npos) << refused.status();
}

TEST(Freezing, AnUnknownSelectionIsRefused) {
  auto t = testing::MakeTinyDitTrainer(Config("blocks.7"));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("'blocks.7' matches no parameter"), std::string::npos) << t.status();
}

}  // namespace
}  // namespace dancegrpo
