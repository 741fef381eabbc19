#include "dancegrpo/io/images.h"

#include <gif_lib.h>
#include <png.h>
#include <torch/torch.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

struct Reader {
  const std::string* bytes;
  size_t at = 0;
};

// Decodes a GIF from memory with giflib: frames uint8 [T, H, W, 3], the delays and whether
// the NETSCAPE2.0 loop extension is there.
struct DecodedGif {
  torch::Tensor frames;
  std::vector<int> delays;
  bool loops = false;
};
DecodedGif DecodeGif(const std::string& bytes) {
  Reader reader{&bytes};
  int error = 0;
  GifFileType* gif = DGifOpen(
      &reader,
      [](GifFileType* f, GifByteType* out, int n) {
        auto* r = static_cast<Reader*>(f->UserData);
        const int k = static_cast<int>(std::min<size_t>(n, r->bytes->size() - r->at));
        std::memcpy(out, r->bytes->data() + r->at, k);
        r->at += k;
        return k;
      },
      &error);
  EXPECT_NE(gif, nullptr) << GifErrorString(error);
  EXPECT_EQ(DGifSlurp(gif), GIF_OK) << GifErrorString(gif->Error);
  DecodedGif d;
  const int h = gif->SHeight, w = gif->SWidth;
  d.frames = torch::zeros({gif->ImageCount, h, w, 3}, torch::kUInt8);
  auto a = d.frames.accessor<uint8_t, 4>();
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& img = gif->SavedImages[i];
    const ColorMapObject* map = img.ImageDesc.ColorMap ? img.ImageDesc.ColorMap : gif->SColorMap;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const GifColorType c = map->Colors[img.RasterBits[y * w + x]];
        a[i][y][x][0] = c.Red, a[i][y][x][1] = c.Green, a[i][y][x][2] = c.Blue;
      }
    GraphicsControlBlock gcb;
    if (DGifSavedExtensionToGCB(gif, i, &gcb) == GIF_OK) d.delays.push_back(gcb.DelayTime);
    for (int e = 0; e < img.ExtensionBlockCount; ++e)
      if (img.ExtensionBlocks[e].Function == APPLICATION_EXT_FUNC_CODE && img.ExtensionBlocks[e].ByteCount == 11 &&
          std::memcmp(img.ExtensionBlocks[e].Bytes, "NETSCAPE2.0", 11) == 0)
        d.loops = true;
  }
  for (int e = 0; e < gif->ExtensionBlockCount; ++e)
    if (gif->ExtensionBlocks[e].ByteCount == 11 && std::memcmp(gif->ExtensionBlocks[e].Bytes, "NETSCAPE2.0", 11) == 0)
      d.loops = true;
  DGifCloseFile(gif, &error);
  return d;
}

TEST(Gif, FewColoursRoundTripExactlyWithDelayAndLoop) {
  // 3 frames, 20x30, 200 colours (distinct in the top 5 bits), each frame different; white
  // and black among them.
  torch::manual_seed(3);
  auto keys = torch::cat({torch::tensor({int64_t{0}, int64_t{32767}}), torch::randperm(32766).narrow(0, 0, 198) + 1});
  auto top = torch::stack({keys / 1024, keys / 32 % 32, keys % 32}, 1);  // top 5 bits of r, g, b
  auto palette = top * 8 + torch::randint(0, 8, {200, 3}, torch::kLong);
  palette[0].fill_(0);    // black
  palette[1].fill_(255);  // white
  const int64_t n = palette.size(0);
  auto idx = (torch::arange(3 * 20 * 30, torch::kLong) * 7 % n).view({3, 20, 30});
  auto frames = palette.index_select(0, idx.flatten()).view({3, 20, 30, 3}).to(torch::kUInt8);
  auto bytes = EncodeGif(frames, 12);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->substr(0, 6), "GIF89a");
  auto d = DecodeGif(*bytes);
  ASSERT_EQ(d.frames.sizes(), frames.sizes());
  EXPECT_TRUE(torch::equal(d.frames, frames));
  EXPECT_EQ(d.delays, (std::vector<int>{12, 12, 12}));
  EXPECT_TRUE(d.loops);
}

TEST(Gif, ManyColoursShareOnePaletteAndStayClose) {
  // A smooth gradient with thousands of colours: median cut keeps it close.
  auto y = torch::linspace(0, 1, 64).view({1, 64, 1}), x = torch::linspace(0, 1, 96).view({1, 1, 96});
  auto t = torch::linspace(0, 1, 4).view({4, 1, 1});
  auto rgb = torch::stack({(y * 255).expand({4, 64, 96}), (x * 255).expand({4, 64, 96}), (t * 255).expand({4, 64, 96})}, -1);
  auto frames = rgb.round().to(torch::kUInt8);
  auto bytes = EncodeGif(frames);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto d = DecodeGif(*bytes);
  auto err = (d.frames.to(torch::kFloat) - frames.to(torch::kFloat)).abs();
  EXPECT_LT(err.mean().item<double>(), 6.0);  // 5 bits a channel alone costs ~2
  EXPECT_LT(err.max().item<double>(), 48.0);
}

TEST(Gif, BadFramesAreRefused) {
  auto s = EncodeGif(torch::zeros({4, 4, 3}, torch::kUInt8));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("[T, H, W, 3]"), std::string::npos) << s.status();
  auto w = WriteGif("/no/such/dir/x.gif", torch::zeros({1, 4, 4, 3}, torch::kUInt8));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("/no/such/dir"), std::string::npos) << w;
}

TEST(Png, EncodeRoundTrips) {
  auto rgb = torch::randint(0, 256, {7, 11, 3}, torch::kUInt8);
  auto bytes = EncodePng(rgb);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_memory(&image, bytes->data(), bytes->size()));
  image.format = PNG_FORMAT_RGB;
  ASSERT_EQ(image.width, 11u);
  ASSERT_EQ(image.height, 7u);
  auto out = torch::zeros({7, 11, 3}, torch::kUInt8);
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, out.data_ptr<uint8_t>(), 0, nullptr));
  EXPECT_TRUE(torch::equal(out, rgb));
}

TEST(Text, WrapsWordsAndCutsLongOnes) {
  EXPECT_EQ(WrapText("two red balls moving left", 10), (std::vector<std::string>{"two red", "balls", "moving", "left"}));
  EXPECT_EQ(WrapText("abcdefghijkl x", 5), (std::vector<std::string>{"abcde", "fghij", "kl x"}));
  EXPECT_TRUE(WrapText("   ", 5).empty());
}

// How many pixels of frame t have exactly this colour.
int64_t Count(const torch::Tensor& frame, int r, int g, int b) {
  auto c = torch::tensor({r, g, b}, torch::kUInt8).view({1, 1, 3});
  return (frame == c).all(-1).sum().item<int64_t>();
}

TEST(Sheet, PlaysEveryClipInStepAndHoldsShorterOnesAndPrintsLabels) {
  // Clip A: 3 frames, red then green then blue; clip B: 1 frame, white-ish grey. 10x10 pixels,
  // enlarged 12x to 120x120.
  auto a = torch::full({3, 3, 10, 10}, -1.0);
  for (int t = 0; t < 3; ++t) a.select(0, t).select(0, t).fill_(1.0);  // channel t at frame t
  auto b = torch::full({3, 1, 10, 10}, 0.0);                              // grey (128)
  auto frames = AnimatedSheet({{a, {"first clip", "alignment 0.91"}}, {b, {"second"}}}, 2, "BASE VS TRAINED");
  ASSERT_EQ(frames.dim(), 4);
  ASSERT_EQ(frames.size(0), 3);
  const int64_t area = 120 * 120;
  EXPECT_EQ(Count(frames[0], 255, 0, 0), area);
  EXPECT_EQ(Count(frames[1], 0, 255, 0), area);
  EXPECT_EQ(Count(frames[2], 0, 0, 255), area);
  for (int t = 0; t < 3; ++t) EXPECT_EQ(Count(frames[t], 128, 128, 128), area) << "frame " << t;
  // Title and labels: ink pixels, the same in every frame outside the clips.
  EXPECT_GT(Count(frames[0], 40, 40, 40), 100);
  EXPECT_EQ(Count(frames[0], 40, 40, 40), Count(frames[2], 40, 40, 40));
  // And it encodes.
  auto bytes = EncodeGif(frames);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(torch::equal(DecodeGif(*bytes).frames, frames));
}

}  // namespace
}  // namespace dancegrpo
