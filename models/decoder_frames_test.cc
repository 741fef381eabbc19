#include "models/decoder_frames.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace dancegrpo::models {
namespace {

// Returns zeros [B, 3, frames(F), 8H, 8W], or an error where frames(F) < 0.
class FakeDecoder : public LatentDecoder {
 public:
  explicit FakeDecoder(std::function<int64_t(int64_t)> frames) : frames_(std::move(frames)) {}
  absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& z) override {
    const int64_t f = frames_(z.size(2));
    if (f < 0) return absl::InvalidArgumentError("shape mismatch in the traced graph");
    return torch::zeros({z.size(0), 3, f, 8 * z.size(3), 8 * z.size(4)});
  }

 private:
  std::function<int64_t(int64_t)> frames_;
};

TEST(DecoderFramesTest, InfersWansRule) {
  FakeDecoder wan([](int64_t f) { return 4 * f - 3; });
  for (int64_t f : {1, 2, 5, 21}) {
    auto rule = InferFrameRule(wan, {16, f, 3, 3}, "the decoder d.pt");
    ASSERT_TRUE(rule.ok()) << rule.status();
    EXPECT_EQ(rule->stride, 4);
    EXPECT_TRUE(rule->causal);
    EXPECT_EQ(rule->Frames(21), 81);
  }
}

TEST(DecoderFramesTest, InfersANonCausalRule) {
  FakeDecoder twice([](int64_t f) { return 2 * f; });
  auto rule = InferFrameRule(twice, {4, 3, 2, 2}, "d");
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(rule->stride, 2);
  EXPECT_FALSE(rule->causal);
  EXPECT_EQ(rule->ToString(), "2 F");
}

// Wan's VAE traced at 3 latent frames: 9 video frames whatever it is given (the case).
TEST(DecoderFramesTest, RefusesATraceThatPinsTheFrameCount) {
  FakeDecoder traced([](int64_t) { return 9; });
  auto rule = InferFrameRule(traced, {16, 5, 3, 3}, "the decoder vae_traced.pt");
  ASSERT_FALSE(rule.ok());
  const std::string m(rule.status().message());
  EXPECT_NE(m.find("returns 9 video frames for 5 latent frames and 9 for 6"), std::string::npos) << m;
  EXPECT_NE(m.find("torch.jit.trace"), std::string::npos) << m;
  EXPECT_NE(m.find("--decoder=wan-vae:DIR"), std::string::npos) << m;
}

TEST(DecoderFramesTest, RefusesADecoderThatFailsOnTheNextFrameCount) {
  FakeDecoder traced([](int64_t f) { return f == 3 ? 9 : -1; });
  auto rule = InferFrameRule(traced, {16, 3, 3, 3}, "the decoder t.pt");
  ASSERT_FALSE(rule.ok());
  EXPECT_NE(std::string(rule.status().message()).find("decodes 3 latent frames but fails on 4"), std::string::npos)
      << rule.status();
}

TEST(DecoderFramesTest, RefusesACountThatFitsNoRule) {
  FakeDecoder odd([](int64_t f) { return 4 * f + 1; });
  auto rule = InferFrameRule(odd, {16, 3, 3, 3}, "d");
  ASSERT_FALSE(rule.ok());
  EXPECT_NE(std::string(rule.status().message()).find("fits neither"), std::string::npos) << rule.status();
}

TEST(DecoderFramesTest, CheckedDecoderRefusesAClipOfTheWrongLength) {
  int64_t pinned = -1;  // -1: follow the rule; else return this many frames
  auto inner = std::make_shared<FakeDecoder>([&](int64_t f) { return pinned < 0 ? 4 * f - 3 : pinned; });
  FrameCheckedDecoder checked(inner, FrameRule{4, true}, "the decoder d.pt");
  auto good = checked.Decode(torch::zeros({2, 16, 5, 2, 2}));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->size(2), 17);
  pinned = 9;
  auto bad = checked.Decode(torch::zeros({2, 16, 5, 2, 2}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("returned 9 video frames for 5 latent frames"),
            std::string::npos)
      << bad.status();
  EXPECT_NE(std::string(bad.status().message()).find("says 17"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace dancegrpo::models
