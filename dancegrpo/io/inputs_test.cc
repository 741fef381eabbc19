#include "dancegrpo/io/inputs.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"
#include "models/safetensors.h"

namespace dancegrpo {
namespace {

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }
std::string Write(const std::string& name, const std::string& text) {
  std::ofstream(Tmp(name)) << text;
  return Tmp(name);
}
void ExpectError(const absl::Status& s, const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error mentioning " << needle;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST(PromptFile, PlainTextOneALineSkippingBlankLines) {
  auto p = ReadPromptFile(Write("p.txt", "a cat\r\n\n  \n  a dog on a bike \n"));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].text, "a cat");
  EXPECT_EQ((*p)[1].text, "a dog on a bike");
  EXPECT_EQ((*p)[1].id, 1);
}

TEST(PromptFile, JsonLinesWithOptionalIds) {
  auto p = ReadPromptFile(Write("p.jsonl", "{\"prompt\": \"a cat\", \"id\": 17}\n{\"text\": \"a dog\"}\n"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)[0].id, 17);
  EXPECT_EQ((*p)[1].text, "a dog");
  EXPECT_EQ((*p)[1].id, 1);
  ExpectError(ReadPromptFile(Write("bad.jsonl", "{\"prompt\": \"a\"}\n{oops\n")).status(), "bad.jsonl:2");
  ExpectError(ReadPromptFile(Write("noprompt.jsonl", "{\"id\": 3}\n")).status(), "prompt");
  ExpectError(ReadPromptFile(Write("dup.jsonl", "{\"prompt\": \"a\", \"id\": 1}\n{\"prompt\": \"b\", \"id\": 1}\n"))
                  .status(),
              "appears twice");
  ExpectError(ReadPromptFile(Write("empty.txt", "\n\n")).status(), "no prompt");
  ExpectError(ReadPromptFile(Tmp("absent.txt")).status(), "absent.txt");
}

TEST(LatentShape, FromVideoSizeAndStridesAsWansVae) {
  // Wan2.1 at 480x832, 81 frames: 21 x 60 x 104 latents of 16 channels.
  auto s = ResolveLatentShape("", "81,480,832", "4,8,8", 16);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<int64_t>{16, 21, 60, 104}));
  EXPECT_EQ(*ResolveLatentShape("16,1,8,8", "", "4,8,8", 16), (std::vector<int64_t>{16, 1, 8, 8}));
  ExpectError(ResolveLatentShape("", "80,480,832", "4,8,8", 16).status(), "1 + k * 4");
  ExpectError(ResolveLatentShape("", "81,481,832", "4,8,8", 16).status(), "height");
  ExpectError(ResolveLatentShape("4,1,8,8", "", "4,8,8", 16).status(), "16 (in_dim)");
  ExpectError(ResolveLatentShape("16,1,8", "", "4,8,8", 16).status(), "4");
  ExpectError(ResolveLatentShape("", "", "4,8,8", 16).status(), "exactly one");
  ExpectError(ResolveLatentShape("16,1,8,8", "81,480,832", "4,8,8", 16).status(), "exactly one");
  ExpectError(ResolveLatentShape("16,x,8,8", "", "4,8,8", 16).status(), "'x'");
}

class UserModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = *models::DitPreset("tiny");
    c.text_len = 6;
    c.pad_text_to_len = true;
    c.pooled_dim = 0;
    config_json_ = Write("tiny.json", models::DitConfigToJson(c));
    torch::manual_seed(1);
    models::VideoDit dit(c);
    std::vector<std::pair<std::string, torch::Tensor>> w;
    for (const auto& p : dit.named_parameters()) w.emplace_back(p.key(), p.value());
    ASSERT_TRUE(models::WriteSafetensors(Tmp("tiny.safetensors"), w).ok());
    models::Conditioning e;
    e.tokens = torch::randn({3, 4, c.text_dim});
    e.token_mask = torch::ones({3, 4}, torch::kBool);
    ASSERT_TRUE(models::WritePrecomputedTextEmbeddings(Tmp("e.h5"), {"", "a cat", "a dog"}, e).ok());
    options_.model = config_json_;
    options_.weights = Tmp("tiny.safetensors");
    options_.embeddings = Tmp("e.h5");
    options_.rewards = "jpeg:1";
  }
  std::string config_json_;
  UserModelOptions options_;
};

TEST_F(UserModelTest, LoadsAndChecksPromptsAgainstTheEmbeddings) {
  auto m = LoadUserModel(options_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.text_len, 6);
  auto prompts = ReadPromptFile(Write("ok.txt", "a cat\na dog\n"));
  EXPECT_TRUE(CheckPromptsHaveEmbeddings(*m->encoder, *prompts, "ok.txt", /*need_null=*/true).ok());
  auto missing = ReadPromptFile(Write("missing.txt", "a cat\na cow\n"));
  ExpectError(CheckPromptsHaveEmbeddings(*m->encoder, *missing, "missing.txt"), "'a cow'");
  ExpectError(CheckPromptsHaveEmbeddings(*m->encoder, *missing, "missing.txt"), "e.h5");
}

TEST_F(UserModelTest, Bf16WeightsAreReadStraightIntoBf16ForBf16Training) {
  auto fp32 = LoadUserModel(options_);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  std::vector<std::pair<std::string, torch::Tensor>> w;
  for (const auto& p : fp32->dit->named_parameters()) w.emplace_back(p.key(), p.value().to(torch::kBFloat16));
  ASSERT_TRUE(models::WriteSafetensors(Tmp("tiny_bf16.safetensors"), w).ok());
  options_.weights = Tmp("tiny_bf16.safetensors");
  options_.compute_dtype = torch::kBFloat16;
  auto bf16 = LoadUserModel(options_);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  for (const auto& [name, t] : w) {
    const auto& p = bf16->dit->named_parameters()[name];
    EXPECT_EQ(p.scalar_type(), torch::kBFloat16) << name;
    EXPECT_TRUE(torch::equal(p, t)) << name;
  }
  // An fp32 file stays fp32 (the masters keep its precision); so does bf16 for fp32 training.
  options_.weights = Tmp("tiny.safetensors");
  EXPECT_EQ(LoadUserModel(options_)->dit->parameters()[0].scalar_type(), torch::kFloat32);
  options_.weights = Tmp("tiny_bf16.safetensors");
  options_.compute_dtype = torch::kFloat32;
  EXPECT_EQ(LoadUserModel(options_)->dit->parameters()[0].scalar_type(), torch::kFloat32);
}

TEST_F(UserModelTest, EmbeddingsOfTheWrongWidthOrLengthAreRefused) {
  auto c = *models::DitConfigFromJson(config_json_);
  c.text_dim = 48;
  options_.model = Write("wide.json", models::DitConfigToJson(c));
  options_.weights = "";
  ExpectError(LoadUserModel(options_).status(), "text_dim is 48");
  c.text_dim = 32;
  c.text_len = 3;
  options_.model = Write("short.json", models::DitConfigToJson(c));
  ExpectError(LoadUserModel(options_).status(), "text_len 3");
}

TEST_F(UserModelTest, CheckpointThatDoesNotFitTheConfigNamesTheMismatch) {
  auto c = *models::DitConfigFromJson(config_json_);
  c.layers = 3;
  options_.model = Write("deeper.json", models::DitConfigToJson(c));
  auto m = LoadUserModel(options_);
  ExpectError(m.status(), "--weights");
  ExpectError(m.status(), "blocks.2.");
}

TEST_F(UserModelTest, BadDecoderAndRewardFilesAreNamed) {
  options_.decoder = Tmp("no_decoder.pt");
  ExpectError(LoadUserModel(options_).status(), "no_decoder.pt");
  options_.decoder = "none";
  options_.rewards = "torchscript=" + Tmp("no_reward.pt");
  ExpectError(LoadUserModel(options_).status(), "no_reward.pt");
}

}  // namespace
}  // namespace dancegrpo
