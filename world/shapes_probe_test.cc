#include "world/shapes_probe.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <torch/torch.h>

#include "dancegrpo/rng.h"
#include "world/shapes_world.h"

namespace dancegrpo {
namespace {

namespace w = world;

// Encodes a prompt as its spec id (pooled [B, 1]).
class SpecIdEncoder : public models::PromptEncoder {
 public:
  absl::StatusOr<models::Conditioning> Encode(const std::vector<std::string>& prompts) override {
    std::vector<float> ids;
    for (const auto& p : prompts) {
      auto spec = w::ParsePrompt(p);
      if (!spec.ok()) return spec.status();
      ids.push_back(static_cast<float>(spec->id()));
    }
    models::Conditioning c;
    c.pooled = torch::tensor(ids).view({-1, 1});
    return c;
  }
};

w::ClipSpec SpecById(int64_t id) {
  for (const auto& s : w::AllSpecs())
    if (s.id() == id) return s;
  ADD_FAILURE() << "no spec " << id;
  return {};
}

// Follows every word of the prompt except the motion: its x0 prediction is exactly the clip
// `seed_of(spec)` renders with the motion forced to "right", so v = (x - target) / sigma
// and the sampler's last x0_hat is that clip.
class IgnoresMotionModel : public models::VelocityModel {
 public:
  explicit IgnoresMotionModel(uint64_t seed) : seed_(seed) {}
  torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                         const models::Conditioning& cond) override {
    std::vector<torch::Tensor> targets;
    for (int64_t i = 0; i < x.size(0); ++i) {
      auto spec = SpecById(static_cast<int64_t>(cond.pooled[i][0].item<float>()));
      spec.motion = w::Motion::kRight;
      targets.push_back(w::Render(spec, seed_));
    }
    return (x - torch::stack(targets)) / sigma.view({-1, 1, 1, 1, 1});
  }

 private:
  uint64_t seed_;
};

TEST(SwapAttribute, ChangesOnlyTheNamedAttribute) {
  w::ClipSpec s;
  s.object = 1, s.colour = 3, s.count = 2, s.motion = w::Motion::kUp, s.background = 0;
  EXPECT_EQ(SwapAttribute(s, "colour")->colour, 0);
  EXPECT_EQ(SwapAttribute(s, "count")->count, 1);
  EXPECT_EQ(SwapAttribute(s, "motion")->motion, w::Motion::kDown);
  EXPECT_EQ(SwapAttribute(s, "motion_axis")->motion, w::Motion::kLeft);
  EXPECT_EQ(SwapAttribute(*SwapAttribute(s, "motion_axis"), "motion_axis")->id(), s.id());
  EXPECT_EQ(SwapAttribute(s, "object")->object, 0);
  EXPECT_EQ(SwapAttribute(s, "background")->background, 1);
  auto m = *SwapAttribute(s, "motion");
  EXPECT_EQ(m.colour, s.colour);
  EXPECT_EQ(m.count, s.count);
  EXPECT_EQ(SwapAttribute(*SwapAttribute(s, "motion"), "motion")->id(), s.id());
  auto bad = SwapAttribute(s, "speed");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'speed'"), std::string::npos);
}

// The fake model renders its prediction with one fixed seed, and the probe renders clip i
// with KeyedSeed(seed, kProbe, clip i): with clips = 1 both are the same clip, so the loss
// with the true prompt is 0 and every other loss has a closed form.
TEST(ProbePromptFollowing, FindsTheIgnoredWordAndTheDirectionItDoesNotFollow) {
  const auto specs = w::TrainSpecs();
  ProbeConfig c;
  c.clips = 1;
  c.samples = 24;
  c.steps = 4;
  c.sigmas = {0.3, 0.9};
  const uint64_t render_seed = KeyedSeed({c.seed, RandomStream::kProbe, -1, 0, -1, -1});
  IgnoresMotionModel model(render_seed);
  SpecIdEncoder encoder;
  std::vector<w::ClipSpec> one = {specs[0]};
  one[0].motion = w::Motion::kRight;  // so the true prompt's target is the rendered clip itself
  std::vector<w::ClipSpec> probe_specs = one;
  for (size_t i = 1; i < specs.size(); ++i) probe_specs.push_back(specs[i]);
  auto p = ProbePromptFollowing(model, encoder, probe_specs, c);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->attributes.size(), ProbeAttributes().size());
  ASSERT_EQ(p->loss_true.size(), c.sigmas.size());
  // With the true prompt the model's x0 is the clip: v = noise - x exactly.
  for (double l : p->loss_true) EXPECT_LT(l, 1e-10);
  for (const auto& a : p->attributes) {
    for (size_t k = 0; k < c.sigmas.size(); ++k) {
      if (a.attribute == "motion" || a.attribute == "motion_axis") {
        EXPECT_EQ(a.loss_swapped[k], p->loss_true[k]) << "the model ignores the motion word: " << a.attribute;
      } else {
        EXPECT_GT(a.loss_swapped[k], 1e-3) << a.attribute;
      }
    }
    // Closed form: the swapped error is (x - x') / sigma, so loss * sigma^2 is the same at
    // every sigma.
    if (a.attribute != "motion" && a.attribute != "motion_axis") {
      const double s0 = c.sigmas[0], s1 = c.sigmas[1];
      EXPECT_NEAR(a.loss_swapped[0] * s0 * s0, a.loss_swapped[1] * s1 * s1, 1e-5 * a.loss_swapped[0]) << a.attribute;
    }
  }
  // Every generated clip moves right by the full travel, whatever the prompt asks.
  double right = 0;
  for (int i = 0; i < c.samples; ++i) right += probe_specs[i % probe_specs.size()].motion == w::Motion::kRight;
  right /= c.samples;
  ASSERT_GT(right, 0.0);
  ASSERT_LT(right, 1.0);
  EXPECT_NEAR(p->direction.best, 1.0, 1e-9);
  EXPECT_NEAR(p->direction.moves, 1.0, 1e-9);
  EXPECT_NEAR(p->direction.asked, right, 1e-9);
  EXPECT_NEAR(p->direction.moves_asked, right, 1e-9);
  const auto table = FormatPromptProbe(*p);
  EXPECT_NE(table.find("| motion |"), std::string::npos);
  EXPECT_NE(table.find("in some direction 100%"), std::string::npos);
}

TEST(BayesPosteriorMean, IsTheSoftmaxWeightedMeanOfTheCandidates) {
  const int64_t d = 6;
  auto candidates = torch::stack({torch::zeros({d}), torch::ones({d})});
  auto log_prior = torch::tensor({std::log(0.25), std::log(0.75)}, torch::kFloat64);
  const double sigma = 0.8;
  auto x_s = torch::full({d}, 0.1, torch::kFloat64);  // exact inputs: the check is to 1e-12
  // log w_a - log w_b, by hand: |x_s|^2 against |x_s - 0.2|^2, over 2 sigma^2.
  const double la = std::log(0.25) - d * 0.1 * 0.1 / (2 * sigma * sigma);
  const double lb = std::log(0.75) - d * 0.1 * 0.1 / (2 * sigma * sigma);  // |0.1 - 0.2| = 0.1 too
  const double wb = 1.0 / (1.0 + std::exp(la - lb));
  auto mean = BayesPosteriorMean(x_s, sigma, candidates, log_prior);
  for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(mean[i].item<double>(), wb, 1e-12);
  EXPECT_NEAR(wb, 0.75, 1e-12);  // equidistant: the prior decides
  // Closer to b: the posterior leans to b beyond its prior.
  auto lean = BayesPosteriorMean(torch::full({d}, 0.15, torch::kFloat64), sigma, candidates, log_prior);
  EXPECT_GT(lean[0].item<double>(), 0.75);
  // One candidate: the mean is that candidate, whatever x_s.
  auto only = BayesPosteriorMean(torch::randn({d}), sigma, candidates.narrow(0, 1, 1), torch::zeros({1}));
  EXPECT_TRUE(torch::allclose(only, torch::ones({d}, torch::kFloat64)));
}

TEST(AttributeVariants, ListsEveryValueOnce) {
  w::ClipSpec s;
  s.colour = 2;
  for (const auto& [attribute, n] : std::vector<std::pair<std::string, int>>{
           {"colour", 4}, {"count", 2}, {"motion", 4}, {"motion_axis", 2}, {"object", 2}, {"background", 2}}) {
    auto v = AttributeVariants(s, attribute);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(static_cast<int>(v->size()), n) << attribute;
    std::set<int64_t> ids;
    for (const auto& x : *v) ids.insert(x.id());
    EXPECT_EQ(static_cast<int>(ids.size()), n) << attribute;
    EXPECT_EQ(ids.count(s.id()), 1u) << attribute << " variants include the spec itself";
  }
  EXPECT_FALSE(AttributeVariants(s, "speed").ok());
}

// The Bayes-optimal losses on real world clips: at low noise the posterior sits on the true
// clip (loss 0); at high noise not knowing the motion word costs a clear margin.
TEST(ProbePromptFollowing, BayesLossesOfTheWorld) {
  IgnoresMotionModel model(1);
  SpecIdEncoder encoder;
  ProbeConfig c;
  c.clips = 24;
  c.samples = 1;
  c.steps = 2;
  c.sigmas = {0.05, 0.8};
  auto p = ProbePromptFollowing(model, encoder, w::TrainSpecs(), c);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_LT(p->bayes_true[0], 1e-8);
  for (const auto& a : p->attributes) {
    EXPECT_LT(a.bayes_unknown[0], 1e-8) << a.attribute;
    if (a.attribute == "motion" || a.attribute == "colour") EXPECT_GT(a.bayes_unknown[1], 1.1 * p->bayes_true[1]);
  }
  // Knowing the sign but not the axis sits between knowing the direction and knowing nothing
  // of it (2 candidate directions instead of 1 or 4).
  auto unknown = [&](const std::string& name) {
    for (const auto& a : p->attributes)
      if (a.attribute == name) return a.bayes_unknown[1];
    ADD_FAILURE() << "no attribute " << name;
    return 0.0;
  };
  EXPECT_GT(unknown("motion_axis"), p->bayes_true[1]);
  EXPECT_LT(unknown("motion_axis"), unknown("motion"));
  EXPECT_GT(p->bayes_true[1], 0.0);
}

TEST(ProbePromptFollowing, RefusesAConfigItCannotRun) {
  IgnoresMotionModel model(1);
  SpecIdEncoder encoder;
  const auto specs = w::TrainSpecs();
  ProbeConfig c;
  c.sigmas = {0.5, 1.5};
  auto r = ProbePromptFollowing(model, encoder, specs, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sigma 1.5 is outside (0, 1]"), std::string::npos) << r.status();
  c = ProbeConfig();
  c.clips = 0;
  r = ProbePromptFollowing(model, encoder, specs, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("clips = 0"), std::string::npos) << r.status();
  r = ProbePromptFollowing(model, encoder, {}, ProbeConfig());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no prompt specs"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace dancegrpo
