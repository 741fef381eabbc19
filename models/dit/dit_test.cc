#include "models/dit/dit.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace dancegrpo::models {
namespace {

DitConfig Tiny() { return *DitPreset("tiny"); }
DitConfig TinyWithStem() {
  auto c = Tiny();
  c.stem_channels = 8;
  return c;
}

Conditioning Text(int64_t b, int64_t len, const DitConfig& c, int seed = 5) {
  torch::manual_seed(seed);
  Conditioning t;
  t.tokens = torch::randn({b, len, c.text_dim});
  t.token_mask = torch::ones({b, len}, torch::kBool);
  t.pooled = torch::randn({b, c.pooled_dim});
  return t;
}

void RandomiseHead(VideoDit& m) {
  torch::NoGradGuard no_grad;
  m.head->head->weight.normal_(0, 0.05);
  m.head->head->bias.normal_(0, 0.05);
}

int64_t CountParameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(VideoDit, ShapesAreRightForOddSizes) {
  torch::manual_seed(0);
  VideoDit m(Tiny());
  for (auto dims : std::vector<std::array<int64_t, 3>>{{3, 5, 7}, {1, 2, 2}, {4, 1, 9}, {2, 6, 3}}) {
    auto x = torch::randn({2, 4, dims[0], dims[1], dims[2]});
    auto grid = m.TokenGrid(dims[0], dims[1], dims[2]);
    EXPECT_EQ(m.Patchify(x).sizes(), (torch::IntArrayRef{2, grid[0] * grid[1] * grid[2], 64}));
    auto v = m.Velocity(x, torch::tensor({0.9f, 0.3f}), Text(2, 5, m.config()));
    EXPECT_EQ(v.sizes(), x.sizes()) << dims[0] << "x" << dims[1] << "x" << dims[2];
  }
}

TEST(VideoDit, ZeroInitialisedOutputPredictsZeroVelocity) {
  VideoDit m(Tiny());
  auto v = m.Velocity(torch::randn({1, 4, 2, 4, 4}), torch::tensor({0.5f}), Text(1, 3, m.config()));
  EXPECT_EQ(v.abs().max().item<float>(), 0.0f);
}

TEST(VideoDit, UnpatchifyInvertsThePatchLayout) {
  // A head output whose value encodes (pf, ph, pw, c) and token position must land at the
  // pixel the layout says, including the crop of padding.
  VideoDit m(Tiny());
  const std::array<int64_t, 3> grid = {2, 2, 2};
  auto tokens = torch::arange(8 * 16, torch::kFloat32).reshape({1, 8, 16});
  auto out = m.Unpatchify(tokens, grid, 2, 3, 4);
  ASSERT_EQ(out.sizes(), (torch::IntArrayRef{1, 4, 2, 3, 4}));
  // Pixel (c=1, f=1, h=2, w=3): token (f'=1, h'=1, w'=1) = 7, in-patch (0, 0, 1), channel 1.
  const float expected = 7 * 16 + (0 * 2 * 2 + 0 * 2 + 1) * 4 + 1;
  EXPECT_EQ(out[0][1][1][2][3].item<float>(), expected);
}

TEST(VideoDit, ParameterCountsMatchTheFormula) {
  for (const std::string name : {"tiny", "small"}) {
    VideoDit m(*DitPreset(name));
    EXPECT_EQ(CountParameters(m), DitParameterCount(m.config())) << name;
  }
  VideoDit stem(TinyWithStem());
  EXPECT_EQ(CountParameters(stem), DitParameterCount(stem.config()));
  // The stem's two 3x3x3 convolutions (4 -> 8 -> 8) and the wider patch embedding input.
  EXPECT_EQ(DitParameterCount(TinyWithStem()) - DitParameterCount(Tiny()),
            (4 * 27 + 1) * 8 + (8 * 27 + 1) * 8 + 8 * 1 * 2 * 2 * 64);
  EXPECT_LT(DitParameterCount(Tiny()), 1000000);
  const int64_t wan13 = DitParameterCount(*DitPreset("wan2.1-1.3b"));
  const int64_t wan14 = DitParameterCount(*DitPreset("wan2.1-14b"));
  EXPECT_GT(wan13, 1300000000);
  EXPECT_LT(wan13, 1500000000);
  EXPECT_GT(wan14, 13000000000);
  EXPECT_LT(wan14, 15000000000);
  // Spot-check the formula by hand for the 1.3B preset: 30 blocks of 46,440,704 plus
  // embeddings (99,840 + 8,653,824 + 2,755,584 + 14,164,992) and head (101,440).
  EXPECT_EQ(wan13, 30LL * 46440704 + 99840 + 8653824 + 2755584 + 14164992 + 101440);
}

TEST(VideoDit, GradientReachesEveryParameter) {
  for (const auto& config : {Tiny(), TinyWithStem()}) {
    torch::manual_seed(1);
    VideoDit m(config);
    RandomiseHead(m);
    auto v = m.Velocity(torch::randn({2, 4, 2, 3, 3}), torch::tensor({0.7f, 0.2f}), Text(2, 4, m.config()));
    v.pow(2).sum().backward();
    for (const auto& item : m.named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
    EXPECT_EQ(m.named_parameters().contains("stem1.weight"), config.stem_channels > 0);
  }
}

TEST(VideoDit, StemShowsEachTokenTheNeighbouringFrames) {
  // With patches one frame deep, a token's embedding sees only its own frame; the stem's
  // 3x3x3 convolutions let it see the frames before and after (where the object moves), and
  // with odd sizes the shapes must still work.
  for (const auto& config : {Tiny(), TinyWithStem()}) {
    torch::manual_seed(3);
    VideoDit m(config);
    auto a = torch::randn({1, 4, 2, 4, 4});
    auto b = a.clone();
    b.index_put_({0, 0, 1, 1, 1}, 5.0);  // change one pixel of frame 1
    const int64_t frame0 = 2 * 2;        // the first 2x2 tokens are frame 0
    const double change = (m.Patchify(a) - m.Patchify(b)).slice(1, 0, frame0).abs().max().item<double>();
    if (config.stem_channels > 0) {
      EXPECT_GT(change, 1e-4);
    } else {
      EXPECT_EQ(change, 0.0);
    }
    auto x = torch::randn({2, 4, 3, 5, 7});
    auto v = m.Velocity(x, torch::tensor({0.9f, 0.3f}), Text(2, 5, m.config()));
    EXPECT_EQ(v.sizes(), x.sizes());
  }
}

// With a text mask, and with Wan's padding (no mask: the checkpointed block takes it empty).
class CheckpointedBlocks : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(TextConvention, CheckpointedBlocks, ::testing::Bool());

TEST_P(CheckpointedBlocks, GiveIdenticalGradients) {
  torch::manual_seed(2);
  auto config = Tiny();
  if (GetParam()) config.text_len = 8, config.pad_text_to_len = true;
  VideoDit plain(config);
  RandomiseHead(plain);
  auto ckpt_config = config;
  ckpt_config.activation_checkpointing = true;
  VideoDit ckpt(ckpt_config);
  {
    torch::NoGradGuard no_grad;
    auto src = plain.named_parameters();
    for (auto& item : ckpt.named_parameters()) item.value().copy_(src[item.key()]);
  }
  auto x = torch::randn({2, 4, 3, 4, 4});
  auto sigma = torch::tensor({0.8f, 0.4f});
  auto text = Text(2, 5, plain.config());
  auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
  auto out_plain = plain.Velocity(x1, sigma, text);
  auto out_ckpt = ckpt.Velocity(x2, sigma, text);
  EXPECT_TRUE(torch::equal(out_plain, out_ckpt));
  out_plain.pow(2).sum().backward();
  out_ckpt.pow(2).sum().backward();
  EXPECT_LE((x1.grad() - x2.grad()).norm().item<double>(), 1e-6 * x1.grad().norm().item<double>());
  auto grads = plain.named_parameters();
  for (const auto& item : ckpt.named_parameters()) {
    const auto& a = grads[item.key()].grad();
    const auto& b = item.value().grad();
    ASSERT_TRUE(b.defined()) << item.key();
    // The recomputation repeats the same operations; only the order in which gradient
    // contributions are summed (for tensors feeding several blocks) may differ, so the
    // results agree to fp32 rounding.
    EXPECT_LE((a - b).norm().item<double>(), 1e-6 * a.norm().item<double>()) << item.key();
  }
}

TEST(VideoDit, ForwardIsDeterministic) {
  torch::manual_seed(3);
  VideoDit m(Tiny());
  RandomiseHead(m);
  auto x = torch::randn({3, 4, 2, 4, 6});
  auto sigma = torch::tensor({0.9f, 0.5f, 0.1f});
  auto text = Text(3, 6, m.config());
  auto a = m.Velocity(x, sigma, text);
  auto b = m.Velocity(x, sigma, text);
  EXPECT_TRUE(torch::equal(a, b));
  // Rows are independent: row 1 alone agrees with row 1 of the batch.
  auto single = m.Velocity(x.narrow(0, 1, 1), sigma.narrow(0, 1, 1), text.Rows(torch::tensor({1}, torch::kLong)));
  EXPECT_TRUE(torch::allclose(single[0], a[1], 1e-5, 1e-6));
}

TEST(VideoDit, MaskedTextTokensAreIgnored) {
  torch::manual_seed(4);
  VideoDit m(Tiny());
  RandomiseHead(m);
  auto x = torch::randn({1, 4, 2, 2, 2});
  auto text = Text(1, 6, m.config());
  text.token_mask[0][4] = false;
  text.token_mask[0][5] = false;
  auto a = m.Velocity(x, torch::tensor({0.5f}), text);
  text.tokens[0][4] += 100.0;
  text.tokens[0][5] -= 50.0;
  auto b = m.Velocity(x, torch::tensor({0.5f}), text);
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-7));
  text.tokens[0][1] += 1.0;  // a real token does matter
  EXPECT_FALSE(torch::allclose(a, m.Velocity(x, torch::tensor({0.5f}), text), 1e-6, 1e-7));
}

TEST(Rope, RotationPreservesNormAndDependsOnRelativePosition) {
  const int64_t d = 12;
  auto rope = MakeRopeTables(d, {6, 3, 3});
  torch::manual_seed(6);
  auto q = torch::randn({1, 54, 1, d});
  auto k = torch::randn({1, 54, 1, d});
  auto rq = ApplyRope(q, rope), rk = ApplyRope(k, rope);
  EXPECT_TRUE(torch::allclose(rq.norm(2, -1), q.norm(2, -1), 1e-5, 1e-6));
  // Same q, k vectors placed at frames (1, 3) and (2, 4), same row/col: equal dot products.
  auto dot = [&](int64_t pq, int64_t pk) {
    auto qa = q[0][0].unsqueeze(0).unsqueeze(0).expand({1, 54, 1, d}).contiguous();
    auto ka = k[0][0].unsqueeze(0).unsqueeze(0).expand({1, 54, 1, d}).contiguous();
    return (ApplyRope(qa, rope)[0][pq][0] * ApplyRope(ka, rope)[0][pk][0]).sum().item<double>();
  };
  const int64_t frame = 9;  // tokens per frame (3 x 3)
  EXPECT_NEAR(dot(1 * frame + 4, 3 * frame + 4), dot(2 * frame + 4, 4 * frame + 4), 1e-5);
  EXPECT_GT(std::abs(dot(1 * frame + 4, 3 * frame + 4) - dot(1 * frame + 4, 1 * frame + 4)), 1e-4);
}

class CountingAttention : public AttentionKernel {
 public:
  torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& mask) override {
    ++calls;
    return local.Attend(q, k, v, mask);
  }
  int calls = 0;
  LocalAttention local;
};

TEST(VideoDit, SelfAttentionKernelIsReplaceable) {
  VideoDit m(Tiny());
  auto kernel = std::make_shared<CountingAttention>();
  m.set_self_attention(kernel);
  m.Velocity(torch::randn({1, 4, 1, 2, 2}), torch::tensor({0.5f}), Text(1, 2, m.config()));
  EXPECT_EQ(kernel->calls, 2);  // one per block
}

TEST(DitConfig, RejectsInconsistentShapes) {
  auto c = Tiny();
  c.heads = 5;
  auto s = ValidateDitConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("divisible"), std::string::npos);
  c = Tiny();
  c.stem_channels = -1;
  s = ValidateDitConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("stem_channels"), std::string::npos);
  EXPECT_FALSE(DitPreset("huge").ok());
  EXPECT_NE(DitPreset("huge").status().message().find("wan2.1-14b"), std::string::npos);
}

// ----------------------------------------------------------------------------- Wan config and text

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;  // TEST_TMPDIR under Bazel, else /tmp/
  std::ofstream(path) << text;
  return path;
}

TEST(DitConfigJson, ReadsWanConfigJsonAsThePreset) {
  // Wan2.1-T2V-1.3B's config.json, field for field.
  auto c = DitConfigFromJson(WriteTemp("wan13.json", R"({
    "_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": 1536, "eps": 1e-06, "ffn_dim": 8960,
    "freq_dim": 256, "in_dim": 16, "model_type": "t2v", "num_heads": 12, "num_layers": 30, "out_dim": 16,
    "text_len": 512, "patch_size": [1, 2, 2], "qk_norm": true, "cross_attn_norm": true, "window_size": [-1, -1],
    "text_dim": 4096})"));
  ASSERT_TRUE(c.ok()) << c.status();
  auto preset = *DitPreset("wan2.1-1.3b");
  EXPECT_EQ(DitParameterCount(*c), DitParameterCount(preset));
  EXPECT_EQ(c->text_len, 512);
  EXPECT_TRUE(c->pad_text_to_len);
  EXPECT_EQ(c->heads, 12);
  // Round trip through our own writer.
  auto back = DitConfigFromJson(WriteTemp("back.json", DitConfigToJson(*c)));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(DitParameterCount(*back), DitParameterCount(*c));
  EXPECT_EQ(back->pad_text_to_len, c->pad_text_to_len);
}

TEST(DitConfigJson, RefusesWhatItCannotBuildNamingTheField) {
  auto expect_error = [](const std::string& json, const std::string& needle) {
    auto c = DitConfigFromJson(WriteTemp("bad.json", json));
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status();
  };
  expect_error(R"({"dim": 64, "model_type": "i2v"})", "i2v");
  expect_error(R"({"dim": 64, "nonsense": 3})", "nonsense");
  expect_error(R"({"dim": 66, "num_heads": 4})", "divisible");
  expect_error(R"({"dim": "wide"})", "'dim'");
  expect_error(R"({"patch_size": [1, 2]})", "patch_size");
  expect_error(R"({"text_attention": "wan_padded", "text_len": 0})", "text_len");
  expect_error("not json", "JSON");
  EXPECT_FALSE(DitConfigFromPresetOrFile("wan2.1-9b").ok());
}

TEST(VideoDit, WanTextPaddingEqualsZeroTokensAttendedToAndDiffersFromTheMask) {
  auto c = Tiny();
  c.text_len = 12;
  c.pad_text_to_len = true;
  torch::manual_seed(2);
  VideoDit padded(c);
  RandomiseHead(padded);
  auto masked_config = c;
  masked_config.pad_text_to_len = false;
  VideoDit masked(masked_config);
  {
    torch::NoGradGuard no_grad;
    auto src = padded.named_parameters();
    for (auto& p : masked.named_parameters()) p.value().copy_(src[p.key()]);
  }
  auto text = Text(2, 5, c);
  text.token_mask[0].narrow(0, 3, 2).fill_(false);  // row 0 has 3 real tokens, then garbage
  auto x = torch::randn({2, 4, 2, 4, 4});
  auto sigma = torch::tensor({0.8f, 0.4f});
  auto v_padded = padded.Velocity(x, sigma, text);
  // What Wan computes: the real tokens, zeros to text_len, every position attended to.
  Conditioning wan = text;
  wan.tokens = torch::constant_pad_nd(text.tokens * text.token_mask.unsqueeze(-1).to(torch::kFloat32),
                                      {0, 0, 0, c.text_len - 5}, 0.0);
  wan.token_mask = torch::ones({2, c.text_len}, torch::kBool);
  auto v_wan = masked.Velocity(x, sigma, wan);
  EXPECT_TRUE(torch::allclose(v_padded, v_wan, 1e-5, 1e-6)) << (v_padded - v_wan).abs().max();
  // Attending to the real tokens alone is another function.
  auto v_mask = masked.Velocity(x, sigma, text);
  EXPECT_GT((v_padded - v_mask).abs().max().item<double>(), 1e-3);
  // Too many tokens for text_len is an error that says so.
  try {
    padded.Velocity(x, sigma, Text(2, 13, c));
    ADD_FAILURE() << "13 tokens > text_len 12 should throw";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("text_len"), std::string::npos);
  }
}

TEST(VideoDit, Bf16ComputeCopyTracksFp32) {
  torch::manual_seed(4);
  VideoDit fp32(Tiny());
  RandomiseHead(fp32);
  VideoDit bf16(Tiny());
  {
    torch::NoGradGuard no_grad;
    auto src = fp32.named_parameters();
    for (auto& p : bf16.named_parameters()) p.value().copy_(src[p.key()]);
  }
  bf16.to(torch::kBFloat16);
  auto x = torch::randn({2, 4, 2, 4, 4});
  auto sigma = torch::tensor({0.7f, 0.2f});
  auto a = fp32.Velocity(x, sigma, Text(2, 5, fp32.config()));
  auto b = bf16.Velocity(x, sigma, Text(2, 5, fp32.config()));
  EXPECT_EQ(b.scalar_type(), torch::kBFloat16);
  const double rel = (a - b.to(torch::kFloat32)).norm().item<double>() / a.norm().item<double>();
  EXPECT_LT(rel, 0.05) << "bf16 should agree with fp32 to a few bf16 ulps";
  EXPECT_GT(rel, 0.0);
  // Deterministic: the same inputs and batch shape give the same bits (the ratio relies on it).
  EXPECT_TRUE(torch::equal(b, bf16.Velocity(x, sigma, Text(2, 5, fp32.config()))));
}


// --- The optimised forward against the formulas it replaced (issue 21), to fp32 rounding.

TEST(Optimised, AttentionScalesQBeforeQKAndEqualsDividingTheScores) {
  torch::manual_seed(11);
  auto q = torch::randn({2, 3, 10, 8}), k = torch::randn({2, 3, 7, 8}), v = torch::randn({2, 3, 7, 8});
  auto mask = torch::rand({2, 7}) > 0.3;
  mask.select(1, 0).fill_(true);  // every query sees at least one key
  LocalAttention kernel;
  for (const auto& m : {torch::Tensor(), mask}) {
    auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0);
    if (m.defined())
      scores = scores.masked_fill(m.logical_not().unsqueeze(1).unsqueeze(1), -std::numeric_limits<float>::infinity());
    auto reference = torch::matmul(torch::softmax(scores, -1), v);
    auto out = kernel.Attend(q, k, v, m);
    EXPECT_TRUE(torch::allclose(out, reference, 1e-5, 1e-6)) << (out - reference).abs().max();
  }
  // An all-true mask is exactly no mask: skipping it changes no bit.
  auto all = torch::ones({2, 7}, torch::kBool);
  EXPECT_TRUE(torch::equal(kernel.Attend(q, k, v, all), kernel.Attend(q, k, v, torch::Tensor())));
}

TEST(Optimised, RopeTablesAreCachedPerGridAndEqualFreshOnes) {
  VideoDit m(Tiny());
  const std::array<int64_t, 3> grid = {3, 4, 5}, other = {2, 4, 5};
  auto a = m.CachedRopeTables(grid, torch::kCPU);
  auto fresh = MakeRopeTables(m.config().head_dim(), grid);
  EXPECT_TRUE(torch::equal(a.cos, fresh.cos));
  EXPECT_TRUE(torch::equal(a.sin, fresh.sin));
  EXPECT_EQ(m.CachedRopeTables(grid, torch::kCPU).cos.data_ptr(), a.cos.data_ptr());  // built once
  auto b = m.CachedRopeTables(other, torch::kCPU);
  EXPECT_EQ(b.cos.size(0), 2 * 4 * 5);
  EXPECT_TRUE(torch::equal(b.cos, MakeRopeTables(m.config().head_dim(), other).cos));
}

TEST(Optimised, RopeWritesHeadMajorWithTheSameBits) {
  torch::manual_seed(8);
  auto x = torch::randn({2, 12, 4, 16});  // [B, L, H, d]
  auto rope = MakeRopeTables(16, {3, 2, 2});
  auto head_major = ApplyRopeHeadMajor(x, rope);
  EXPECT_TRUE(head_major.is_contiguous());
  EXPECT_EQ(head_major.sizes(), (std::vector<int64_t>{2, 4, 12, 16}));
  // The rotation as first written: in [B, L, H, d], broadcast over heads.
  auto pairs = x.reshape({2, 12, 4, 8, 2});
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto c = rope.cos.unsqueeze(0).unsqueeze(2), s = rope.sin.unsqueeze(0).unsqueeze(2);
  auto reference = torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).reshape({2, 12, 4, 16});
  EXPECT_TRUE(torch::equal(head_major.transpose(1, 2), reference));
  EXPECT_TRUE(torch::equal(ApplyRope(x, rope), reference));
}

TEST(Optimised, BlockWithFusedModulationEqualsTheUnfusedFormula) {
  auto c = Tiny();
  torch::manual_seed(4);
  DitBlock block(c);
  auto x = torch::randn({2, 12, c.dim}), e0 = torch::randn({2, 6, c.dim}) * 0.1;
  auto context = torch::randn({2, 5, c.dim});
  auto mask = torch::ones({2, 5}, torch::kBool);
  mask[1][4] = false;
  auto rope = MakeRopeTables(c.head_dim(), {3, 2, 2});
  LocalAttention kernel, cross;
  auto out = block->forward(x, e0, context, mask, rope, kernel);
  // The block as it was written before: a * (1 + s) + t and x + y * g as separate kernels.
  auto e = (block->modulation + e0).chunk(6, 1);
  auto y = block->self_attn(block->norm1(x) * (1 + e[1]) + e[0], torch::Tensor(), torch::Tensor(), &rope, kernel);
  auto r = x + y * e[2];
  r = r + block->cross_attn(block->norm3(r), context, mask, nullptr, cross);
  y = block->ffn->forward(block->norm2(r) * (1 + e[4]) + e[3]);
  r = r + y * e[5];
  EXPECT_TRUE(torch::allclose(out, r, 1e-5, 1e-6)) << (out - r).abs().max();
}

}  // namespace
}  // namespace dancegrpo::models
