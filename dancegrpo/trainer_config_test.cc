#include "dancegrpo/trainer_config.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

bool Mentions(const absl::Status& s, const std::string& needle) {
  return std::string(s.message()).find(needle) != std::string::npos;
}

TEST(TrainerConfig, DefaultsAreAValidRun) {
  TrainerConfig c;
  EXPECT_TRUE(ValidateTrainerConfig(c).ok()) << ValidateTrainerConfig(c);
  c.latent_shape = {4, 1, 2, 2};
  EXPECT_TRUE(ValidateTrainerConfig(c).ok());
}

TEST(TrainerConfig, RefusesEachBadSettingByName) {
  struct Case {
    std::string needle;
    void (*change)(TrainerConfig&);
  };
  const Case cases[] = {
      {"--micro_batch=-2 is negative", [](TrainerConfig& c) { c.micro_batch = -2; }},
      {"--steps=0; it must be >= 1", [](TrainerConfig& c) { c.steps = 0; }},
      {"--sp=0; it must be >= 1", [](TrainerConfig& c) { c.sequence_parallel = 0; }},
      {"group_size = 1", [](TrainerConfig& c) { c.group_size = 1; }},
      {"--zero_stage=4: use 2 or 3", [](TrainerConfig& c) { c.zero_stage = 4; }},
      {"learning rate", [](TrainerConfig& c) { c.optimizer.lr = 0; }},
      {"--max_grad_norm=-1", [](TrainerConfig& c) { c.optimizer.max_grad_norm = -1; }},
      {"--cfg_scale=0.5", [](TrainerConfig& c) { c.cfg_scale = 0.5; }},
      {"eta = 0", [](TrainerConfig& c) { c.sde.eta = 0; }},
      {"latent_shape must be [C, F, H, W]", [](TrainerConfig& c) { c.latent_shape = {1, 2}; }},
      {"timestep_fraction", [](TrainerConfig& c) { c.timestep_fraction = 0; }},
      {"best_of_n = 3", [](TrainerConfig& c) { c.best_of_n = 3; }},
      {"--lr_schedule=linear: use constant or cosine", [](TrainerConfig& c) { c.lr_schedule = "linear"; }},
      {"--lr_final_fraction=1.5", [](TrainerConfig& c) { c.lr_schedule = "cosine", c.lr_final_fraction = 1.5; }},
  };
  for (const auto& k : cases) {
    TrainerConfig c;
    k.change(c);
    const auto s = ValidateTrainerConfig(c);
    EXPECT_FALSE(s.ok()) << k.needle;
    EXPECT_TRUE(Mentions(s, k.needle)) << "expected '" << k.needle << "' in: " << s;
  }
}

// The schedule's closed form: lr at the first iteration, lr x f at the last, their mean half-way.
TEST(TrainerConfig, CosineLearningRateSchedule) {
  TrainerConfig c;
  c.optimizer.lr = 1e-3;
  c.iterations = 11;
  for (int64_t i : {0, 5, 10}) EXPECT_DOUBLE_EQ(ScheduledLr(c, i), 1e-3) << "constant";
  c.lr_schedule = "cosine";
  c.lr_final_fraction = 0.2;
  EXPECT_DOUBLE_EQ(ScheduledLr(c, 0), 1e-3);
  EXPECT_NEAR(ScheduledLr(c, 5), 0.6e-3, 1e-15);
  EXPECT_NEAR(ScheduledLr(c, 10), 0.2e-3, 1e-15);
  EXPECT_NEAR(ScheduledLr(c, 2), 0.2e-3 + 0.4e-3 * (1 + std::cos(M_PI * 0.2)), 1e-15);
  EXPECT_NEAR(ScheduledLr(c, 40), 0.2e-3, 1e-15) << "past the end: the final rate";
  for (int64_t i = 1; i < 11; ++i) EXPECT_LT(ScheduledLr(c, i), ScheduledLr(c, i - 1)) << i;
  const auto described = ParseDescribedConfig(DescribeConfig(c));
  EXPECT_EQ(described.at("lr_schedule"), "cosine");
  EXPECT_EQ(described.at("lr_final_fraction"), "0.2");
  EXPECT_EQ(ParseDescribedConfig(DescribeConfig(TrainerConfig())).count("lr_schedule"), 0u)
      << "constant is what checkpoints without the key meant";
}

TEST(TrainerConfig, DescribedConfigParsesBack) {
  TrainerConfig c;
  c.steps = 13;
  c.shift = 3.5;
  const auto parsed = ParseDescribedConfig(DescribeConfig(c));
  EXPECT_EQ(parsed.at("steps"), "13");
  EXPECT_EQ(parsed.at("shift"), "3.5");
  EXPECT_EQ(parsed.at("sde"), "dancegrpo");
  for (const auto& key : SamplerKeys()) EXPECT_TRUE(parsed.count(key)) << key << " is not described";
}

TrainerConfig TrainedSampler() {
  TrainerConfig trained;
  trained.steps = 10;
  trained.shift = 3;
  trained.sde.kind = SdeKind::kFlowGrpo;
  trained.sde.eta = 0.7;
  trained.sde.noise_level = 0.55;
  trained.sde.window = {2, 5, true};
  return trained;
}

TEST(TrainerConfig, SamplerComesFromTheDescription) {
  const TrainerConfig trained = TrainedSampler();
  TrainerConfig c;  // the flags' defaults
  ASSERT_TRUE(ApplyDescribedSampler(DescribeConfig(trained), {}, c).ok());
  EXPECT_EQ(c.steps, 10);
  EXPECT_EQ(c.shift, 3);
  EXPECT_EQ(c.sde.kind, SdeKind::kFlowGrpo);
  EXPECT_EQ(c.sde.eta, 0.7);
  EXPECT_EQ(c.sde.noise_level, 0.55);
  EXPECT_EQ(c.sde.window.begin, 2);
  EXPECT_EQ(c.sde.window.size, 5);
  EXPECT_TRUE(c.sde.window.random);
  // The rest of the run is not the sampler's: untouched.
  EXPECT_EQ(c.group_size, TrainerConfig().group_size);
  EXPECT_EQ(DescribeSampler(c),
            "flowgrpo SDE (noise level 0.55), 10 steps, shift 3, SDE window 5 steps drawn per iteration");
}

TEST(TrainerConfig, ExplicitSettingsWinOverTheDescription) {
  TrainerConfig c;
  c.sde.eta = 0.2;
  c.steps = 4;
  ASSERT_TRUE(ApplyDescribedSampler(DescribeConfig(TrainedSampler()), {"eta", "steps"}, c).ok());
  EXPECT_EQ(c.sde.eta, 0.2);
  EXPECT_EQ(c.steps, 4);
  EXPECT_EQ(c.shift, 3);
}

TEST(TrainerConfig, AGivenWindowReplacesTheRecordedOneWhole) {
  TrainerConfig c;  // --sde_window_size=0 given: every step stochastic
  ASSERT_TRUE(ApplyDescribedSampler(DescribeConfig(TrainedSampler()), {"sde_window_size"}, c).ok());
  EXPECT_TRUE(c.sde.window.all());
  EXPECT_FALSE(c.sde.window.random) << "the recorded random flag must not come with a window the user replaced";
  EXPECT_TRUE(ValidateTrainerConfig(c).ok()) << ValidateTrainerConfig(c);
  EXPECT_EQ(c.steps, 10) << "the rest of the sampler still comes from the record";
}

TEST(TrainerConfig, AnUnparsableRecordedSettingIsNamed) {
  TrainerConfig c;
  const auto s = ApplyDescribedSampler("steps=ten\nshift=1\n", {}, c);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Mentions(s, "steps=ten")) << s;
  EXPECT_TRUE(Mentions(s, "--steps")) << s;
  const auto kind = ApplyDescribedSampler("sde=langevin\n", {}, c);
  EXPECT_TRUE(Mentions(kind, "sde=langevin")) << kind;
}

TEST(TrainerConfig, DescribesAFixedWindowAndAllSteps) {
  TrainerConfig c;
  EXPECT_EQ(DescribeSampler(c), "dancegrpo SDE (eta 0.3), 8 steps, shift 1, every step stochastic");
  c.sde.window = {3, 2, false};
  EXPECT_EQ(DescribeSampler(c), "dancegrpo SDE (eta 0.3), 8 steps, shift 1, SDE window steps 3-4");
}

}  // namespace
}  // namespace dancegrpo
