#include "models/safetensors.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "models/dit/dit.h"

namespace dancegrpo::models {
namespace {

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::pair<std::string, torch::Tensor>> StateOf(torch::nn::Module& m, const std::string& prefix,
                                                           torch::ScalarType dtype) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(prefix + p.key(), p.value().detach().to(dtype).clone());
  return out;
}

TEST(Safetensors, RoundTripsEachDtypeAndMetadata) {
  const std::string path = Tmp("rt.safetensors");
  auto a = torch::randn({3, 5});
  auto b = torch::randn({7}).to(torch::kBFloat16);
  auto c = torch::randn({2, 2, 2}).to(torch::kFloat16);
  ASSERT_TRUE(WriteSafetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->entries().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->entries().at("b").dtype, "BF16");
  EXPECT_TRUE(torch::equal(*f->Read("a"), a));
  EXPECT_TRUE(torch::equal(*f->Read("b"), b));
  EXPECT_TRUE(torch::equal(*f->Read("c"), c));
  EXPECT_EQ(f->Read("zzz").status().code(), absl::StatusCode::kNotFound);
}

TEST(Safetensors, ImportsBf16CheckpointWithPrefixIntoDit) {
  torch::manual_seed(0);
  VideoDit source(*DitPreset("tiny"));
  const std::string path = Tmp("dit_bf16.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, StateOf(source, "model.diffusion_model.", torch::kBFloat16)).ok());
  torch::manual_seed(1);
  VideoDit target(*DitPreset("tiny"));
  auto report = ImportSafetensors(target, path, {{"model.diffusion_model.", ""}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded, static_cast<int64_t>(target.parameters().size()));
  auto src = source.named_parameters();
  for (const auto& p : target.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), src[p.key()].to(torch::kBFloat16).to(torch::kFloat32))) << p.key();
}

TEST(Safetensors, ShapeMismatchNamesTheTensorAndLeavesModelUnchanged) {
  torch::manual_seed(0);
  VideoDit model(*DitPreset("tiny"));
  auto state = StateOf(model, "", torch::kFloat32);
  for (auto& [name, t] : state)
    if (name == "blocks.1.ffn.0.weight") t = torch::zeros({3, 3});
  const std::string path = Tmp("bad_shape.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, state).ok());
  auto before = model.named_parameters()["blocks.0.ffn.0.weight"].clone();
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : state)
      if (name == "blocks.0.ffn.0.weight") t.add_(1.0);
  }
  ASSERT_TRUE(WriteSafetensors(path, state).ok());
  auto r = ImportSafetensors(model, path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("blocks.1.ffn.0.weight"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("[3, 3]"), std::string::npos) << r.status();
  EXPECT_TRUE(torch::equal(model.named_parameters()["blocks.0.ffn.0.weight"], before));
}

TEST(Safetensors, MissingAndUnexpectedTensorsAreReported) {
  VideoDit model(*DitPreset("tiny"));
  auto state = StateOf(model, "", torch::kFloat32);
  state.erase(state.begin());  // drop one parameter
  const std::string missing = Tmp("missing.safetensors");
  ASSERT_TRUE(WriteSafetensors(missing, state).ok());
  auto r = ImportSafetensors(model, missing);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not in the file"), std::string::npos) << r.status();

  state = StateOf(model, "", torch::kFloat32);
  state.emplace_back("extra.weight", torch::zeros({2}));
  const std::string extra = Tmp("extra.safetensors");
  ASSERT_TRUE(WriteSafetensors(extra, state).ok());
  auto strict = ImportSafetensors(model, extra);
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("extra.weight"), std::string::npos);
  auto lenient = ImportSafetensors(model, extra, {}, /*allow_unexpected=*/true);
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->unexpected, std::vector<std::string>{"extra.weight"});
}

TEST(Safetensors, CorruptAndTruncatedFilesAreRejectedClearly) {
  const std::string good = Tmp("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(good, {{"w", torch::randn({64, 64})}}).ok());
  const std::string bytes = ReadAll(good);

  const std::string truncated = Tmp("truncated.safetensors");
  WriteAll(truncated, bytes.substr(0, bytes.size() - 100));
  auto t = SafetensorsFile::Open(truncated);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(truncated), std::string::npos);
  EXPECT_NE(t.status().message().find("outside"), std::string::npos) << t.status();

  const std::string tiny = Tmp("tiny.safetensors");
  WriteAll(tiny, "abc");
  EXPECT_NE(SafetensorsFile::Open(tiny).status().message().find("8-byte"), std::string::npos);

  std::string flipped = bytes;
  flipped[7] = '\x7f';  // absurd header length
  const std::string huge = Tmp("huge.safetensors");
  WriteAll(huge, flipped);
  EXPECT_NE(SafetensorsFile::Open(huge).status().message().find("header length"), std::string::npos);

  std::string garbled = bytes;
  garbled[9] = '#';  // inside the JSON
  const std::string bad_json = Tmp("bad_json.safetensors");
  WriteAll(bad_json, garbled);
  EXPECT_NE(SafetensorsFile::Open(bad_json).status().message().find("JSON"), std::string::npos);

  std::ofstream(Tmp("x")) << "";
  EXPECT_EQ(SafetensorsFile::Open(Tmp("does_not_exist")).status().code(), absl::StatusCode::kNotFound);
}

TEST(Safetensors, ShardedSetWithIndexLoadsLikeOneFile) {
  torch::manual_seed(3);
  VideoDit source(*DitPreset("tiny"));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : source.parameters()) p.normal_();
  }
  auto state = StateOf(source, "", torch::kFloat32);
  std::vector<std::pair<std::string, torch::Tensor>> a(state.begin(), state.begin() + state.size() / 2),
      b(state.begin() + state.size() / 2, state.end());
  ASSERT_TRUE(WriteSafetensors(Tmp("m-00001-of-00002.safetensors"), a).ok());
  ASSERT_TRUE(WriteSafetensors(Tmp("m-00002-of-00002.safetensors"), b).ok());
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  for (size_t i = 0; i < state.size(); ++i)
    index += (i ? ", \"" : "\"") + state[i].first + "\": \"" +
             (i < a.size() ? "m-00001-of-00002.safetensors" : "m-00002-of-00002.safetensors") + "\"";
  WriteAll(Tmp("m.safetensors.index.json"), index + "}}");
  VideoDit target(*DitPreset("tiny"));
  auto r = ImportSafetensors(target, Tmp("m.safetensors.index.json"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->loaded, static_cast<int64_t>(state.size()));
  auto src = source.named_parameters();
  for (const auto& p : target.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), src[p.key()])) << p.key();

  // A bf16 copy of the same set loads into bf16 compute weights without going through fp32.
  VideoDit bf16(*DitPreset("tiny"));
  bf16.to(torch::kBFloat16);
  ASSERT_TRUE(ImportSafetensors(bf16, Tmp("m.safetensors.index.json")).ok());
  for (const auto& p : bf16.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), src[p.key()].to(torch::kBFloat16))) << p.key();

  // An index that names a tensor its shard does not hold is stale: refused, naming both.
  WriteAll(Tmp("stale.safetensors.index.json"),
           "{\"weight_map\": {\"head.head.weight\": \"m-00001-of-00002.safetensors\"}}");
  auto stale = ImportSafetensors(target, Tmp("stale.safetensors.index.json"));
  ASSERT_FALSE(stale.ok());
  EXPECT_NE(stale.status().message().find("stale"), std::string::npos) << stale.status();
  WriteAll(Tmp("missing.safetensors.index.json"), "{\"weight_map\": {\"a\": \"nowhere.safetensors\"}}");
  auto missing = ImportSafetensors(target, Tmp("missing.safetensors.index.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nowhere.safetensors"), std::string::npos) << missing.status();
}

TEST(Safetensors, MismatchedNamesSuggestThePrefixToStrip) {
  torch::manual_seed(3);
  VideoDit source(*DitPreset("tiny"));
  ASSERT_TRUE(WriteSafetensors(Tmp("prefixed.safetensors"),
                               StateOf(source, "model.diffusion_model.", torch::kFloat32)).ok());
  VideoDit target(*DitPreset("tiny"));
  auto r = ImportSafetensors(target, Tmp("prefixed.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--weights_prefix=model.diffusion_model."), std::string::npos) << r.status();
  ASSERT_TRUE(ImportSafetensors(target, Tmp("prefixed.safetensors"), {{"model.diffusion_model.", ""}}).ok());
  // A checkpoint of another width lists the mismatching shapes and names the config fields.
  auto wide_config = *DitPreset("tiny");
  wide_config.ffn_dim = 96;
  VideoDit wide(wide_config);
  auto w = ImportSafetensors(wide, Tmp("prefixed.safetensors"), {{"model.diffusion_model.", ""}});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("ffn.0.weight"), std::string::npos) << w.status();
  EXPECT_NE(w.status().message().find("ffn_dim"), std::string::npos) << w.status();
}

}  // namespace
}  // namespace dancegrpo::models
