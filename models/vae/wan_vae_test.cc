// The native Wan2.1 VAE decoder against Wan's own vae.py (tests/fixtures/wan_vae, made by
// scripts/wan_vae/make_reference.py): float32 within 1e-4 of the largest reference value at
// F = 1, 2, 3 and 5 latent frames, odd H and W, batch 2; the real Wan2.1 layout; diffusers' and
// Wan's names; bf16; causality of the chunked decode; tiling; and every loading error.
#include "models/vae/wan_vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "hpc/h5/h5.h"
#include "models/safetensors.h"

namespace dancegrpo::models::vae {
namespace {

const char kDir[] = "tests/fixtures/wan_vae";

struct Case {
  torch::Tensor latents, video;
};

struct Reference {
  WanVaeConfig config;
  std::vector<Case> cases;
  std::vector<std::pair<std::string, std::vector<int64_t>>> layout;
};

torch::Tensor ReadTensor(hid_t file, const std::string& name) {
  std::vector<hsize_t> dims;
  auto v = hpc::h5::ReadDataset<float>(file, name, &dims);
  EXPECT_TRUE(v.ok()) << v.status();
  std::vector<int64_t> shape(dims.begin(), dims.end());
  return torch::tensor(*v).view(shape).clone();
}

std::vector<int64_t> ReadInts(hid_t file, const std::string& name) {
  auto v = hpc::h5::ReadDataset<int64_t>(file, name);
  EXPECT_TRUE(v.ok()) << v.status();
  return *v;
}

const Reference& Ref() {
  static const Reference* ref = [] {
    auto* r = new Reference();
    auto f = hpc::h5::OpenFile(absl::StrCat(kDir, "/reference.h5"));
    CHECK(f.ok()) << f.status();
    const hid_t id = f->id();
    r->config.dim = ReadInts(id, "config/dim")[0];
    r->config.z_dim = ReadInts(id, "config/z_dim")[0];
    r->config.dim_mult = ReadInts(id, "config/dim_mult");
    r->config.num_res_blocks = ReadInts(id, "config/num_res_blocks")[0];
    r->config.temporal_downsample.clear();
    for (int64_t t : ReadInts(id, "config/temperal_downsample")) r->config.temporal_downsample.push_back(t != 0);
    auto mean = ReadTensor(id, "config/latents_mean"), std = ReadTensor(id, "config/latents_std");
    r->config.latents_mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
    r->config.latents_std.assign(std.data_ptr<float>(), std.data_ptr<float>() + std.numel());
    for (int i = 0; hpc::h5::Exists(id, absl::StrCat("cases/", i)); ++i)
      r->cases.push_back({ReadTensor(id, absl::StrCat("cases/", i, "/latents")),
                          ReadTensor(id, absl::StrCat("cases/", i, "/video"))});
    auto names = hpc::h5::ReadStrings(id, "layout_names");
    CHECK(names.ok()) << names.status();
    const auto shapes = ReadInts(id, "layout_shapes");
    for (size_t i = 0; i < names->size(); ++i) {
      std::vector<int64_t> shape;
      for (int d = 0; d < 5 && shapes[i * 5 + d] > 0; ++d) shape.push_back(shapes[i * 5 + d]);
      r->layout.push_back({(*names)[i], shape});
    }
    return r;
  }();
  return *ref;
}

// max |a - b| / max |b|
double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b).abs().max().item<double>() / b.abs().max().item<double>();
}

std::shared_ptr<WanVaeDecoder> LoadWanNames(const WanVaeOptions& o = {}) {
  auto d = WanVaeDecoder::FromFile(Ref().config, absl::StrCat(kDir, "/wan_vae.safetensors"), o);
  EXPECT_TRUE(d.ok()) << d.status();
  return *d;
}

TEST(WanVaeTest, ReferenceHasEveryCaseTheIssueNames) {
  std::set<int64_t> frames;
  for (const auto& c : Ref().cases) frames.insert(c.latents.size(2));
  EXPECT_EQ(frames, (std::set<int64_t>{1, 2, 3, 5}));
  EXPECT_EQ(Ref().cases[0].latents.size(0), 2);
  EXPECT_EQ(Ref().cases[0].latents.size(3) % 2, 1);
}

TEST(WanVaeTest, LayoutIsWan21sOwn) {
  const auto mine = WanVaeDecoderLayout(WanVaeConfig::Wan21());
  ASSERT_EQ(mine.size(), Ref().layout.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].first, Ref().layout[i].first) << i;
    EXPECT_EQ(mine[i].second, Ref().layout[i].second) << mine[i].first;
  }
  int64_t params = 0;
  for (const auto& [name, shape] : mine) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    params += n;
  }
  EXPECT_GT(params, 70'000'000);  // Wan2.1's decoder side: about 73M parameters
  EXPECT_EQ(WanVaeConfig::Wan21().VideoFrames(21), 81);
  EXPECT_EQ(WanVaeConfig::Wan21().spatial_stride(), 8);
}

TEST(WanVaeTest, Float32MatchesWansDecode) {
  auto d = LoadWanNames();
  for (const auto& c : Ref().cases) {
    auto out = d->DecodeUnclamped(c.latents);
    ASSERT_EQ(out.sizes(), c.video.sizes());
    EXPECT_LT(RelativeError(out, c.video), 1e-4) << "latents " << c.latents.sizes();
    auto clamped = d->Decode(c.latents);
    ASSERT_TRUE(clamped.ok()) << clamped.status();
    EXPECT_LT((*clamped - c.video.clamp(-1, 1)).abs().max().item<double>(), 1e-4 * c.video.abs().max().item<double>());
    EXPECT_LE(clamped->abs().max().item<double>(), 1.0);
  }
}

TEST(WanVaeTest, DiffusersFolderGivesTheSameBits) {
  auto wan = LoadWanNames();
  auto diffusers = WanVaeDecoder::Load(absl::StrCat(kDir, "/diffusers"));
  ASSERT_TRUE(diffusers.ok()) << diffusers.status();
  EXPECT_EQ((*diffusers)->config().latents_std, Ref().config.latents_std);
  const auto& c = Ref().cases[2];
  EXPECT_TRUE(torch::equal(wan->DecodeUnclamped(c.latents), (*diffusers)->DecodeUnclamped(c.latents)));
}

TEST(WanVaeTest, DiffusersNamesMapToWans) {
  EXPECT_EQ(*WanNameFromDiffusers("post_quant_conv.weight", 2), "conv2.weight");
  EXPECT_EQ(*WanNameFromDiffusers("decoder.mid_block.resnets.1.norm2.gamma", 2), "decoder.middle.2.residual.3.gamma");
  EXPECT_EQ(*WanNameFromDiffusers("decoder.up_blocks.1.resnets.2.conv_shortcut.bias", 2),
            "decoder.upsamples.6.shortcut.bias");
  EXPECT_EQ(*WanNameFromDiffusers("decoder.up_blocks.2.upsamplers.0.resample.1.weight", 2),
            "decoder.upsamples.11.resample.1.weight");
  EXPECT_EQ(*WanNameFromDiffusers("decoder.up_blocks.0.upsamplers.0.time_conv.bias", 2),
            "decoder.upsamples.3.time_conv.bias");
  EXPECT_FALSE(WanNameFromDiffusers("encoder.conv_in.weight", 2).has_value());
  EXPECT_FALSE(WanNameFromDiffusers("decoder.up_blocks.0.resnets.3.conv1.weight", 2).has_value());
}

std::map<std::string, torch::Tensor> WanTensors();

// Random weights make a sensitive network: rounding the weights alone to bf16 (computing in
// float32) moves the output by 3-7% of its range here. Rounding every activation to bf16 as
// well must stay of that order: within three times the weight-rounding error (measured: 1.1-2.9x).
TEST(WanVaeTest, Bfloat16ErrorIsTheWeightRoundingsOrder) {
  WanVaeOptions o;
  o.dtype = torch::kBFloat16;
  auto d = LoadWanNames(o);
  auto rounded_weights = WanTensors();
  for (auto& [name, t] : rounded_weights) t = t.to(torch::kBFloat16).to(torch::kFloat);
  auto rounded = WanVaeDecoder::FromTensors(Ref().config, rounded_weights);
  ASSERT_TRUE(rounded.ok()) << rounded.status();
  for (const auto& c : Ref().cases) {
    auto out = d->DecodeUnclamped(c.latents);
    EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
    const double err = RelativeError(out, c.video);
    const double weights_only = RelativeError((*rounded)->DecodeUnclamped(c.latents), c.video);
    std::printf("latents %s: bf16 decode %.4f, float32 with bf16-rounded weights %.4f (of max |video|)\n",
                c10::str(c.latents.sizes()).c_str(), err, weights_only);
    EXPECT_LT(err, 3 * weights_only + 0.02) << "latents " << c.latents.sizes();
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

// The chunk cache carries only the past: decoding the first k latent frames gives exactly
// the first 4k - 3 frames of the whole decode.
TEST(WanVaeTest, ChunkedDecodeIsCausal) {
  auto d = LoadWanNames();
  const auto& c = Ref().cases[3];  // F = 5
  auto whole = d->DecodeUnclamped(c.latents);
  for (int64_t k = 1; k < c.latents.size(2); ++k) {
    auto part = d->DecodeUnclamped(c.latents.narrow(2, 0, k));
    ASSERT_EQ(part.size(2), 4 * k - 3);
    EXPECT_TRUE(torch::equal(part, whole.narrow(2, 0, 4 * k - 3))) << k;
  }
}

// Tiling changes the decode (the middle attention sees one tile, not the frame), so it is
// checked by construction: one covering tile is the untiled decode; the first tile is its own
// decode; the next tile's first columns are the linear blend of the two tiles' decodes.
TEST(WanVaeTest, TiledDecodeIsDiffusersTiling) {
  auto whole = LoadWanNames();
  torch::manual_seed(3);
  auto z = torch::randn({1, Ref().config.z_dim, 2, 7, 9});
  auto ref = whole->DecodeUnclamped(z);
  WanVaeOptions o;
  o.tiling = true;
  o.tile = 80;  // 10 latents: one tile covers 7 x 9, so nothing is tiled
  o.tile_stride = 64;
  EXPECT_TRUE(torch::equal(LoadWanNames(o)->DecodeUnclamped(z), ref));
  o.tile = 32;  // 4 latents every 3: a 3 x 3 grid of tiles, blended over 8 pixels
  o.tile_stride = 24;
  auto tiled = LoadWanNames(o)->DecodeUnclamped(z);
  ASSERT_EQ(tiled.sizes(), ref.sizes());
  auto t00 = whole->DecodeUnclamped(z.narrow(3, 0, 4).narrow(4, 0, 4));
  auto t01 = whole->DecodeUnclamped(z.narrow(3, 0, 4).narrow(4, 3, 4));
  EXPECT_TRUE(torch::equal(tiled.narrow(3, 0, 24).narrow(4, 0, 24), t00.narrow(3, 0, 24).narrow(4, 0, 24)));
  for (int64_t x = 0; x < 8; ++x) {
    auto expected = t00.narrow(3, 0, 24).select(4, 24 + x) * (1 - x / 8.0) + t01.narrow(3, 0, 24).select(4, x) * (x / 8.0);
    EXPECT_LT((tiled.narrow(3, 0, 24).select(4, 24 + x) - expected).abs().max().item<double>(), 1e-5) << x;
  }
  EXPECT_TRUE(torch::equal(tiled.narrow(3, 0, 24).narrow(4, 32, 16), t01.narrow(3, 0, 24).narrow(4, 8, 16)));
  const double mean_err = (tiled - ref).abs().mean().item<double>() / ref.abs().mean().item<double>();
  std::printf("tiled (32/24 px) vs untiled, random weights: mean |diff| %.3f of mean |video|\n", mean_err);
}

TEST(WanVaeTest, WrongLatentChannelsAreRefused) {
  auto d = LoadWanNames();
  auto r = d->Decode(torch::zeros({1, Ref().config.z_dim + 1, 1, 3, 3}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("--latent_shape"), std::string::npos) << r.status();
}

std::map<std::string, torch::Tensor> WanTensors() {
  auto st = SafetensorsFile::Open(absl::StrCat(kDir, "/wan_vae.safetensors"));
  EXPECT_TRUE(st.ok());
  std::map<std::string, torch::Tensor> m;
  for (const auto& [name, e] : st->entries()) m[name] = *st->Read(name);
  return m;
}

TEST(WanVaeTest, LoadingErrorsNameTheTensor) {
  {
    auto m = WanTensors();
    m.erase("decoder.middle.1.proj.weight");
    auto d = WanVaeDecoder::FromTensors(Ref().config, m);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(std::string(d.status().message()).find("missing decoder tensors: decoder.middle.1.proj.weight"),
              std::string::npos)
        << d.status();
  }
  {
    auto m = WanTensors();
    m["decoder.upsamples.3.time_conv.weight"] = torch::zeros({1, 2, 3, 1, 1});
    auto d = WanVaeDecoder::FromTensors(Ref().config, m);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(std::string(d.status().message()).find("decoder.upsamples.3.time_conv.weight is [1, 2, 3, 1, 1]"),
              std::string::npos)
        << d.status();
  }
  {
    auto m = WanTensors();
    m["decoder.upsamples.99.resample.1.weight"] = torch::zeros({1});
    m["encoder.conv1.weight"] = torch::zeros({1});  // the encoder is ignored
    auto d = WanVaeDecoder::FromTensors(Ref().config, m);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(std::string(d.status().message()).find("not Wan2.1 VAE decoder tensors: decoder.upsamples.99"),
              std::string::npos)
        << d.status();
  }
  {  // Wan2.1's config against the small file: shapes differ, named.
    auto d = WanVaeDecoder::FromFile(WanVaeConfig::Wan21(), absl::StrCat(kDir, "/wan_vae.safetensors"));
    ASSERT_FALSE(d.ok());
    EXPECT_NE(std::string(d.status().message()).find("shapes differ"), std::string::npos) << d.status();
  }
}

TEST(WanVaeTest, PthIsRefusedNamingTheConversionScript) {
  auto d = WanVaeDecoder::Load(absl::StrCat(kDir, "/wan_vae.pth"));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("scripts/wan_vae/pth_to_safetensors.py"), std::string::npos)
      << d.status();
  auto missing = WanVaeDecoder::Load("/nonexistent/vae");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(WanVaeTest, DiffusersConfigErrors) {
  auto wan22 = WanVaeConfigFromDiffusersJson(R"({"_class_name": "AutoencoderKLWan", "is_residual": true})", "c.json");
  ASSERT_FALSE(wan22.ok());
  EXPECT_NE(std::string(wan22.status().message()).find("Wan2.2"), std::string::npos);
  auto bad_std = WanVaeConfigFromDiffusersJson(R"({"z_dim": 2, "latents_mean": [0, 0], "latents_std": [1, 0]})", "c.json");
  ASSERT_FALSE(bad_std.ok());
  EXPECT_NE(std::string(bad_std.status().message()).find("latents_std"), std::string::npos);
  auto mismatch = WanVaeConfigFromDiffusersJson(R"({"z_dim": 4})", "c.json");  // Wan2.1's 16 means for 4 channels
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(std::string(mismatch.status().message()).find("z_dim = 4"), std::string::npos);
  auto not_json = WanVaeConfigFromDiffusersJson("{", "c.json");
  EXPECT_FALSE(not_json.ok());
  auto defaults = WanVaeConfigFromDiffusersJson("{}", "c.json");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->dim, 96);
  EXPECT_EQ(defaults->latents_mean.size(), 16u);
}

}  // namespace
}  // namespace dancegrpo::models::vae

namespace dancegrpo::models::vae {
namespace {

// Wan's decode of 81 x 480 x 832 (16 x 21 x 60 x 104 latents), fp32: the issue measured a
// cache of about 3.5 GB; tiling bounds the cache and the chunk by the tile.
TEST(WanVaeTest, PlanCountsWansDecode) {
  const auto c = WanVaeConfig::Wan21();
  WanVaeOptions o;
  const auto m = PlanWanVaeDecode(c, o, 1, 21, 60, 104);
  EXPECT_GT(m.cache, 3.2e9);
  EXPECT_LT(m.cache, 4.2e9);
  EXPECT_NEAR(static_cast<double>(m.weights), 4.0 * 73.3e6, 2e6);
  EXPECT_EQ(m.tiles, 0);
  EXPECT_EQ(m.output, int64_t{3} * 81 * 480 * 832 * 12);
  EXPECT_EQ(PlanWanVaeDecode(c, o, 2, 21, 60, 104).peak() - m.peak(), m.peak() - m.weights);  // linear in the batch
  o.tiling = true;
  const auto t = PlanWanVaeDecode(c, o, 1, 21, 60, 104);
  EXPECT_LT(t.cache + t.chunk, (m.cache + m.chunk) / 2);
  EXPECT_GT(t.tiles, 0);
  o.dtype = torch::kBFloat16;
  EXPECT_EQ(PlanWanVaeDecode(c, o, 1, 21, 60, 104).weights, m.weights / 2);
}

TEST(WanVaeTest, SpecParsing) {
  auto none = ParseWanVaeSpec("decoder.pt");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto tiled = ParseWanVaeSpec("wan-vae:/m/vae,tile=128,stride=96");
  ASSERT_TRUE(tiled.ok() && tiled->has_value());
  EXPECT_EQ((*tiled)->path, "/m/vae");
  EXPECT_TRUE((*tiled)->options.tiling);
  EXPECT_EQ((*tiled)->options.tile, 128);
  EXPECT_EQ((*tiled)->options.tile_stride, 96);
  auto bad = ParseWanVaeSpec("wan-vae:/m/vae,tiles=2");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("'tiles=2'"), std::string::npos);
  EXPECT_FALSE(ParseWanVaeSpec("wan-vae:").ok());
}

}  // namespace
}  // namespace dancegrpo::models::vae
