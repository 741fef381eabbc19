// LoRA adapters on the DiT: names and shapes PEFT uses, the base exactly at B = 0 and with the
// adapters off, merge = the adapted forward to fp32 rounding, the adapter file round trip,
// the base checksum, and every bad input with its message.
#include "models/lora.h"

#include <torch/torch.h>

#include <cstdlib>
#include <map>
#include <set>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "models/lora_keys.h"
#include "models/dit/dit.h"
#include "models/safetensors.h"

namespace dancegrpo::models {
namespace {

std::shared_ptr<VideoDit> Tiny(uint64_t seed = 3) {
  torch::manual_seed(seed);
  auto dit = std::make_shared<VideoDit>(*DitPreset("tiny"));
  torch::NoGradGuard no_grad;
  dit->head->head->weight.normal_(0, 0.05);  // a non-zero head, so that the output depends on the blocks
  return dit;
}

struct Input {
  torch::Tensor x, sigma;
  Conditioning cond;
};

Input MakeInput(const DitConfig& c) {
  torch::manual_seed(42);
  Input in;
  in.x = torch::randn({2, c.in_channels, 2, 4, 4});
  in.sigma = torch::tensor({0.7, 0.3});
  in.cond.tokens = torch::randn({2, 5, c.text_dim});
  in.cond.pooled = torch::randn({2, c.pooled_dim});
  return in;
}

torch::Tensor Forward(VideoDit& dit, const Input& in) {
  torch::NoGradGuard no_grad;
  return dit.Velocity(in.x, in.sigma, in.cond);
}

LoraConfig Config(int64_t rank = 4, double alpha = 8) {
  LoraConfig c;
  c.rank = rank;
  c.alpha = alpha;
  return c;
}

// B random, so that the adapters change the output.
void RandomiseB(VideoDit& dit) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  for (const auto& p : dit.named_parameters())
    if (p.key().find(".lora_B.") != std::string::npos) p.value().normal_(0, 0.05);
}

TEST(Lora, AddsPeftNamedAdaptersToTheDefaultTargets) {
  auto dit = Tiny();
  const auto& c = dit->config();
  auto layers = AttachLora(*dit, Config(4), 1);
  ASSERT_TRUE(layers.ok()) << layers.status();
  EXPECT_EQ(layers->size(), static_cast<size_t>(10 * c.layers));  // q, k, v, o twice + 2 FFN linears per block
  EXPECT_EQ((*layers)[0], "blocks.0.self_attn.q");
  auto named = dit->named_parameters();
  const auto* a = named.find("blocks.1.ffn.0.lora_A.weight");
  const auto* b = named.find("blocks.1.ffn.0.lora_B.weight");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->sizes(), (std::vector<int64_t>{4, c.dim}));
  EXPECT_EQ(b->sizes(), (std::vector<int64_t>{c.ffn_dim, 4}));
  EXPECT_EQ(b->abs().max().item<float>(), 0.0f) << "B starts at zero";
  const double bound = 1.0 / std::sqrt(static_cast<double>(c.dim));
  EXPECT_LE(a->abs().max().item<double>(), bound);
  EXPECT_GT(a->abs().max().item<double>(), 0.5 * bound) << "A is drawn, kaiming-uniform";
  int adapters = 0;
  for (const auto& p : named) adapters += IsLoraParameter(p.key());
  EXPECT_EQ(adapters, 2 * static_cast<int>(layers->size()));
  EXPECT_TRUE(HasLora(*dit));
  EXPECT_EQ(named.find("text_embedding.0.lora_A.weight"), nullptr) << "not a default target";
  // The same seed draws the same adapters (every rank builds the same model).
  auto again = Tiny();
  ASSERT_TRUE(AttachLora(*again, Config(4), 1).ok());
  EXPECT_TRUE(torch::equal(*again->named_parameters().find("blocks.1.ffn.0.lora_A.weight"), *a));
}

TEST(Lora, AtStepZeroTheModelIsTheBaseBitwise) {
  auto dit = Tiny();
  const auto in = MakeInput(dit->config());
  const auto base = Forward(*dit, in);
  ASSERT_TRUE(AttachLora(*dit, Config(8, 16), 5).ok());
  EXPECT_TRUE(torch::equal(Forward(*dit, in), base)) << "B = 0: the adapters add exactly nothing";
  RandomiseB(*dit);
  const auto adapted = Forward(*dit, in);
  EXPECT_FALSE(torch::allclose(adapted, base, 1e-4, 1e-6)) << "non-zero B changes the output";
  {
    LoraDisabled off(AdaptedLayers(*dit));
    EXPECT_TRUE(torch::equal(Forward(*dit, in), base)) << "adapters off = the base, bit for bit";
  }
  EXPECT_TRUE(torch::equal(Forward(*dit, in), adapted)) << "and back on after the scope";
}

TEST(Lora, MergedWeightsComputeWhatTheAdaptersCompute) {
  auto dit = Tiny();
  const auto in = MakeInput(dit->config());
  ASSERT_TRUE(AttachLora(*dit, Config(4, 12), 1).ok());
  RandomiseB(*dit);
  const auto adapted = Forward(*dit, in);
  auto merged_model = Tiny();
  const auto merged = MergedParameters(*dit);
  {
    torch::NoGradGuard no_grad;
    auto target = merged_model->named_parameters();
    ASSERT_EQ(merged.size(), target.size()) << "the merged model has the base's parameters, no adapters";
    for (const auto& [name, value] : merged) target[name].copy_(value);
  }
  const auto out = Forward(*merged_model, in);
  EXPECT_TRUE(torch::allclose(out, adapted, 1e-4, 1e-5))
      << "max diff " << (out - adapted).abs().max().item<double>();
  // One layer by the formula: W + alpha / r * B A.
  auto* q = dit->blocks[0]->as<DitBlockImpl>()->self_attn->q.get();
  const auto expected = q->weight + (12.0 / 4) * torch::mm(q->lora_B->weight, q->lora_A->weight);
  for (const auto& [name, value] : merged)
    if (name == "blocks.0.self_attn.q.weight") EXPECT_TRUE(torch::allclose(value, expected, 1e-6, 1e-7));
}

TEST(Lora, AnAdapterFileRoundTripEqualsTheInMemoryMerge) {
  auto dit = Tiny();
  ASSERT_TRUE(AttachLora(*dit, Config(4, 8), 1).ok());
  RandomiseB(*dit);
  std::vector<std::pair<std::string, torch::Tensor>> adapters, base;
  for (const auto& p : dit->named_parameters()) {
    (IsLoraParameter(p.key()) ? adapters : base).emplace_back(p.key(), p.value().detach());
  }
  auto layers = LoraLayers(adapters, 8);
  ASSERT_TRUE(layers.ok()) << layers.status();
  const auto tensors = LoraFileTensors(*layers);
  EXPECT_EQ(tensors.size(), adapters.size() / 2 * 3) << "A, B and alpha per layer";
  EXPECT_EQ(tensors[0].first, "diffusion_model.blocks.0.cross_attn.k.lora_A.weight");
  EXPECT_EQ(tensors[2].first, "diffusion_model.blocks.0.cross_attn.k.alpha");
  EXPECT_FLOAT_EQ(tensors[2].second.item<float>(), 8.0f);
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/adapter.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  auto read = ReadLoraFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), adapters.size() / 2);
  EXPECT_DOUBLE_EQ(read->at("blocks.1.ffn.2").scale, 2.0);
  auto merged = MergeLora(base, *read);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const auto in_memory = MergedParameters(*dit);
  ASSERT_EQ(merged->size(), in_memory.size());
  for (size_t i = 0; i < in_memory.size(); ++i) {
    EXPECT_EQ((*merged)[i].first, in_memory[i].first);
    EXPECT_TRUE(torch::allclose((*merged)[i].second, in_memory[i].second, 1e-6, 1e-7)) << in_memory[i].first;
  }
  // An adapter for a layer the base lacks, or of another width, is refused.
  std::map<std::string, LoraLayerWeights> stray = {{"blocks.9.self_attn.q", read->begin()->second}};
  auto refused = MergeLora(base, stray);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("blocks.9.self_attn.q"), std::string::npos) << refused.status();
  std::map<std::string, LoraLayerWeights> wide = {{"blocks.0.ffn.0", read->at("blocks.0.ffn.2")}};
  refused = MergeLora(base, wide);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("another model"), std::string::npos) << refused.status();
}

// What diffusers' Wan LoRA conversion (_convert_non_diffusers_wan_lora_to_diffusers) does with
// a file's keys, per lora_keys.h: each converted layer's A and B are consumed, with alpha / r
// folded in when the layer is in a block and has an alpha; outside the blocks an alpha is not
// consumed, and a key left over (or a file without block layers) is an error. Returns the
// update B A x scale per layer as diffusers would apply it, or the error.
absl::StatusOr<std::map<std::string, torch::Tensor>> DiffusersTwin(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::map<std::string, torch::Tensor> left;
  for (const auto& [key, t] : tensors) {
    absl::string_view k = key;
    if (!absl::ConsumePrefix(&k, "diffusion_model.")) return absl::InvalidArgumentError("no diffusion_model. prefix");
    left[std::string(k)] = t;
  }
  std::set<std::string> layers;
  bool any_block = false;
  for (const auto& [key, t] : left) {
    absl::string_view layer = key;
    if (absl::ConsumeSuffix(&layer, ".lora_A.weight")) layers.insert(std::string(layer));
    any_block = any_block || absl::StartsWith(key, "blocks.");
  }
  if (!any_block) return absl::InvalidArgumentError("min() arg is an empty sequence (no block layer)");
  std::map<std::string, torch::Tensor> updates;
  for (const auto& layer : layers) {
    if (!DiffusersWanConvertsLayer(layer)) continue;
    auto a = left.at(layer + ".lora_A.weight"), b = left.at(layer + ".lora_B.weight");
    left.erase(layer + ".lora_A.weight");
    left.erase(layer + ".lora_B.weight");
    double scale = 1;
    if (LoraLayerInBlock(layer) && left.count(layer + ".alpha")) {
      scale = left.at(layer + ".alpha").item<double>() / static_cast<double>(a.size(0));
      left.erase(layer + ".alpha");
    }
    updates[layer] = torch::mm(b.to(torch::kFloat64), a.to(torch::kFloat64)) * scale;
  }
  if (!left.empty()) return absl::InvalidArgumentError("`state_dict` should be empty at this point but has " +
                                                       left.begin()->first);
  return updates;
}

// Adapters outside the blocks (the head, the embeddings; bench/billion_scale.sh trains the
// head's) are written so that diffusers loads the file: alpha / r folded into A, no alpha key.
// diffusers, ComfyUI (alpha where present) and merge_lora then apply the run's update exactly.
TEST(Lora, AnAdapterFileWithTheHeadAndEmbeddingsIsOneDiffusersLoads) {
  auto dit = Tiny();
  auto c = Config(4, 12);  // scale 3
  c.targets = "self_attn.q,ffn.2,head.head,text_embedding.0,time_embedding.2,time_projection.1";
  auto attached = AttachLora(*dit, c, 1);
  ASSERT_TRUE(attached.ok()) << attached.status();
  RandomiseB(*dit);
  std::vector<std::pair<std::string, torch::Tensor>> adapters, base;
  for (const auto& p : dit->named_parameters())
    (IsLoraParameter(p.key()) ? adapters : base).emplace_back(p.key(), p.value().detach());
  auto layers = LoraLayers(adapters, 12);
  ASSERT_TRUE(layers.ok()) << layers.status();
  const auto tensors = LoraFileTensors(*layers);
  std::set<std::string> keys;
  for (const auto& [k, t] : tensors) keys.insert(k);
  EXPECT_TRUE(keys.count("diffusion_model.blocks.0.self_attn.q.alpha"));
  EXPECT_TRUE(keys.count("diffusion_model.head.head.lora_A.weight"));
  for (const char* outside : {"head.head", "text_embedding.0", "time_embedding.2", "time_projection.1"})
    EXPECT_FALSE(keys.count(std::string("diffusion_model.") + outside + ".alpha")) << outside;
  // diffusers' conversion consumes every key and applies the run's update, layer by layer.
  auto updates = DiffusersTwin(tensors);
  ASSERT_TRUE(updates.ok()) << updates.status();
  EXPECT_EQ(updates->size(), layers->size());
  for (const auto& [layer, w] : *layers) {
    const auto run = torch::mm(w.b.to(torch::kFloat64), w.a.to(torch::kFloat64)) * w.scale;
    // (A x alpha / r is rounded to fp32 once: within fp32 rounding of the largest entry.)
    const double error = (updates->at(layer) - run).abs().max().item<double>();
    EXPECT_LE(error, 1e-6 * run.abs().max().item<double>()) << layer;
    EXPECT_GT(run.abs().max().item<double>(), 0) << layer;
  }
  // merge_lora (PEFT's convention: no alpha, scale 1) reads it to the in-memory merge.
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/outside.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  auto read = ReadLoraFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_DOUBLE_EQ(read->at("head.head").scale, 1.0);
  EXPECT_DOUBLE_EQ(read->at("blocks.0.self_attn.q").scale, 3.0);
  auto merged = MergeLora(base, *read);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const auto in_memory = MergedParameters(*dit);
  ASSERT_EQ(merged->size(), in_memory.size());
  for (size_t i = 0; i < in_memory.size(); ++i)
    EXPECT_TRUE(torch::allclose((*merged)[i].second, in_memory[i].second, 1e-6, 1e-7)) << in_memory[i].first;
  // The old layout (an alpha on the head) is what diffusers refused.
  auto old = tensors;
  old.emplace_back("diffusion_model.head.head.alpha", torch::tensor(12.0f));
  auto refused = DiffusersTwin(old);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("head.head.alpha"), std::string::npos) << refused.status();
}

TEST(Lora, DiffusersConvertsWansLayersOnly) {
  EXPECT_TRUE(DiffusersWanConvertsLayer("blocks.12.cross_attn.v_img"));
  EXPECT_TRUE(DiffusersWanConvertsLayer("blocks.0.ffn.0"));
  EXPECT_TRUE(DiffusersWanConvertsLayer("time_projection.1"));
  EXPECT_FALSE(DiffusersWanConvertsLayer("blocks.0.norm3"));
  EXPECT_FALSE(DiffusersWanConvertsLayer("pooled_embedding"));  // this project's extension
  EXPECT_FALSE(DiffusersWanConvertsLayer("blocks.x.ffn.0"));
  EXPECT_TRUE(LoraLayerInBlock("blocks.3.self_attn.q"));
  EXPECT_FALSE(LoraLayerInBlock("head.head"));
  EXPECT_FALSE(LoraLayerInBlock("blocks.q"));
}

TEST(Lora, TargetsSelectLayersBySuffix) {
  auto dit = Tiny();
  auto c = Config(2);
  c.targets = "q, blocks.1.ffn.2,head.head";
  auto layers = AttachLora(*dit, c, 1);
  ASSERT_TRUE(layers.ok()) << layers.status();
  EXPECT_EQ(*layers, (std::vector<std::string>{"blocks.0.self_attn.q", "blocks.0.cross_attn.q", "blocks.1.self_attn.q",
                                               "blocks.1.cross_attn.q", "blocks.1.ffn.2", "head.head"}));
}

TEST(Lora, BadConfigsAreRefusedWithTheFix) {
  auto expect_error = [](const LoraConfig& c, const std::string& needle) {
    auto dit = Tiny();
    auto r = AttachLora(*dit, c, 1);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(std::string(r.status().message()).find(needle), std::string::npos) << r.status();
    EXPECT_FALSE(HasLora(*dit)) << "a refused config leaves the model unchanged";
  };
  expect_error(Config(0), "rank 0: it must be >= 1");
  expect_error(Config(65), "rank 65 is above the width of 'blocks.0.self_attn.q' (64 in, 64 out)");
  expect_error(Config(4, 0), "alpha 0");
  expect_error(Config(4, std::nan("")), "alpha nan");
  auto c = Config();
  c.dropout = 0.1;
  expect_error(c, "ratio would not be 1");
  c = Config();
  c.targets = "self_attn.qq";
  expect_error(c, "'self_attn.qq' matches no linear layer");
  expect_error(c, "blocks.*.self_attn.q");  // the available layers are listed
  c.targets = " , ";
  expect_error(c, "--lora_targets is empty");
  auto dit = Tiny();
  ASSERT_TRUE(AttachLora(*dit, Config(), 1).ok());
  auto twice = AttachLora(*dit, Config(), 1);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("already has a LoRA adapter"), std::string::npos);
}

TEST(Lora, ABadAdapterFileIsRefused) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  ASSERT_TRUE(WriteSafetensors(dir + "/half.safetensors", {{"diffusion_model.blocks.0.ffn.0.lora_A.weight",
                                                            torch::zeros({2, 8})}})
                  .ok());
  auto r = ReadLoraFile(dir + "/half.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has lora_A but no lora_B"), std::string::npos) << r.status();
  ASSERT_TRUE(WriteSafetensors(dir + "/other.safetensors", {{"blocks.0.ffn.0.weight", torch::zeros({2, 8})}}).ok());
  r = ReadLoraFile(dir + "/other.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is not a LoRA tensor"), std::string::npos) << r.status();
  ASSERT_TRUE(WriteSafetensors(dir + "/alphas.safetensors", {{"blocks.0.ffn.0.lora_A.weight", torch::zeros({2, 8})},
                                                              {"blocks.0.ffn.0.lora_B.weight", torch::zeros({8, 2})},
                                                              {"blocks.0.ffn.0.alpha", torch::ones({2})}})
                  .ok());
  r = ReadLoraFile(dir + "/alphas.safetensors");
  ASSERT_FALSE(r.ok()) << "an alpha of two elements";
  EXPECT_NE(r.status().message().find("one-element"), std::string::npos) << r.status();
  ASSERT_TRUE(WriteSafetensors(dir + "/rank0.safetensors", {{"blocks.0.ffn.0.lora_A.weight", torch::zeros({0, 8})},
                                                             {"blocks.0.ffn.0.lora_B.weight", torch::zeros({8, 0})}})
                  .ok());
  r = ReadLoraFile(dir + "/rank0.safetensors");
  ASSERT_FALSE(r.ok()) << "rank 0 would divide alpha by 0";
  EXPECT_NE(r.status().message().find("r >= 1"), std::string::npos) << r.status();
}

TEST(Lora, TheBaseChecksumSeesTheBaseOnly) {
  auto dit = Tiny();
  const auto sum = BaseChecksum(*dit);
  EXPECT_EQ(sum.rfind("crc32c:", 0), 0u);
  EXPECT_EQ(BaseChecksum(*Tiny()), sum) << "the same weights, the same checksum";
  ASSERT_TRUE(AttachLora(*dit, Config(), 1).ok());
  RandomiseB(*dit);
  EXPECT_EQ(BaseChecksum(*dit), sum) << "adapters are not the base";
  {
    torch::NoGradGuard no_grad;
    auto w = dit->blocks[1]->as<DitBlockImpl>()->ffn[0]->as<LoraLinearImpl>()->weight;
    w[0][0] += 1e-3;
  }
  EXPECT_NE(BaseChecksum(*dit), sum) << "one changed base weight changes it";
  EXPECT_NE(BaseChecksum(*Tiny(4)), sum) << "other weights";
  // Weights stored in bf16 give one checksum whether loaded in bf16 or widened to fp32.
  auto bf16 = Tiny(5);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : bf16->parameters()) p.copy_(p.to(torch::kBFloat16).to(torch::kFloat32));
  }
  const auto widened = BaseChecksum(*bf16);
  bf16->to(torch::kBFloat16);
  EXPECT_EQ(BaseChecksum(*bf16), widened);
}

}  // namespace
}  // namespace dancegrpo::models
