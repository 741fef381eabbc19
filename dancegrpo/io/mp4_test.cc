#include "dancegrpo/io/mp4.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace dancegrpo {
namespace {

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

// A red square moving right over a blue background, [3, F, H, W] in [-1, 1].
torch::Tensor MovingSquare(int64_t frames, int64_t h, int64_t w) {
  auto clip = torch::empty({3, frames, h, w});
  clip[0].fill_(-1.0), clip[1].fill_(-0.6), clip[2].fill_(0.8);
  for (int64_t t = 0; t < frames; ++t) {
    auto sq = clip.select(1, t).narrow(1, h / 4, h / 2).narrow(2, t * 2, w / 4);
    sq[0].fill_(0.9), sq[1].fill_(-0.9), sq[2].fill_(-0.9);
  }
  return clip;
}

torch::Tensor AsUint8(const torch::Tensor& clip) {  // [F, H, W, 3], as WriteMp4 quantises
  return ((clip.clamp(-1, 1) + 1) * 127.5).round().permute({1, 2, 3, 0}).to(torch::kFloat);
}

TEST(Mp4Test, RoundTripKeepsFramesSizeAndColours) {
  const auto clip = MovingSquare(9, 24, 40);
  const std::string path = TmpPath("clip.mp4");
  ASSERT_TRUE(WriteMp4(path, clip).ok());
  std::ifstream f(path, std::ios::binary);
  char head[12];
  f.read(head, 12);
  EXPECT_EQ(std::string(head + 4, 4), "ftyp");  // an ISO media file
  auto frames = ReadVideoFrames(path);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->sizes(), torch::IntArrayRef({9, 24, 40, 3}));
  const auto want = AsUint8(clip), got = frames->to(torch::kFloat);
  const double mean_err = (got - want).abs().mean().item<double>();
  EXPECT_LT(mean_err, 3.0) << "mean |error| in 0..255 units";
  // Flat regions away from edges keep their colour within codec tolerance (chroma is halved).
  auto bg = got.narrow(1, 0, 4).narrow(2, 30, 8).mean({0, 1, 2});
  EXPECT_NEAR(bg[0].item<double>(), 0, 6);
  EXPECT_NEAR(bg[1].item<double>(), 51, 6);
  EXPECT_NEAR(bg[2].item<double>(), 229.5, 6);
  // The square moved: its red centroid shifts right by 2 pixels a frame.
  auto red = (got.select(3, 0) > 128).to(torch::kFloat);  // [F, H, W]
  auto xs = torch::arange(40, torch::kFloat);
  auto cx = (red * xs).sum({1, 2}) / red.sum({1, 2});
  EXPECT_NEAR((cx[8] - cx[0]).item<double>(), 16, 1.0);
}

TEST(Mp4Test, OddSizesArePaddedToEven) {
  const auto clip = MovingSquare(4, 10, 13);
  const std::string path = TmpPath("odd.mp4");
  ASSERT_TRUE(WriteMp4(path, clip).ok());
  auto frames = ReadVideoFrames(path);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->sizes(), torch::IntArrayRef({4, 10, 14, 3}));
}

TEST(Mp4Test, BadClipsAndFilesAreErrors) {
  EXPECT_EQ(WriteMp4(TmpPath("a.mp4"), torch::zeros({4, 2, 8, 8})).code(), absl::StatusCode::kInvalidArgument);
  auto nan = torch::zeros({3, 2, 8, 8});
  nan[0][0][0][0] = std::nan("");
  auto s = WriteMp4(TmpPath("b.mp4"), nan);
  EXPECT_NE(std::string(s.message()).find("non-finite"), std::string::npos) << s;
  EXPECT_FALSE(WriteMp4("/nonexistent/dir/c.mp4", torch::zeros({3, 2, 8, 8})).ok());
  EXPECT_FALSE(std::filesystem::exists("/nonexistent/dir/c.mp4.tmp"));
  const std::string junk = TmpPath("junk.mp4");
  std::ofstream(junk) << "not a video";
  EXPECT_FALSE(ReadVideoFrames(junk).ok());
  EXPECT_FALSE(ReadVideoFrames(TmpPath("missing.mp4")).ok());
}

}  // namespace
}  // namespace dancegrpo
