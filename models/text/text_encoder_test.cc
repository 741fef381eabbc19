#include "models/text/text_encoder.h"
#include "models/text/precomputed_text_encoder.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"
#include "hpc/h5/h5.h"

namespace dancegrpo::models {
namespace {

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

TEST(WordTokenizer, SplitsLowercasesMapsUnknownsAndPads) {
  WordTokenizer tok({"a", "red", "ball", "moves", "left"}, 6);
  EXPECT_EQ(tok.vocab_size(), 8);
  auto [ids, mask] = tok.Encode({"A red ball, moves LEFT!", "a purple ball", ""});
  ASSERT_EQ(ids.sizes(), (torch::IntArrayRef{3, 6}));
  // [BOS] a red ball moves left  (ids 3.. in vocabulary order)
  EXPECT_TRUE(torch::equal(ids[0], torch::tensor({2, 3, 4, 5, 6, 7}, torch::kLong)));
  EXPECT_TRUE(torch::equal(ids[1], torch::tensor({2, 3, 1, 5, 0, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(mask[1], torch::tensor({1, 1, 1, 1, 0, 0}, torch::kBool)));
  EXPECT_EQ(mask[2].sum().item<int64_t>(), 1) << "the empty prompt keeps [BOS]";
  auto [long_ids, long_mask] = tok.Encode({"a a a a a a a a a"});
  EXPECT_EQ(long_mask.sum().item<int64_t>(), 6) << "truncated to max_length";
}

TEST(TrainableTextEncoder, PaddingDoesNotChangeRealTokensAndGradientsFlow) {
  torch::manual_seed(0);
  TrainableTextEncoder enc(WordTokenizer({"red", "blue", "ball", "cube"}, 8), TextEncoderConfig{32, 4, 2, 8});
  auto c = enc.Encode({"red ball", "blue cube cube"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->tokens.sizes(), (torch::IntArrayRef{2, 8, 32}));
  EXPECT_EQ(c->pooled.sizes(), (torch::IntArrayRef{2, 32}));
  // The real tokens of "red ball" do not depend on how much padding follows them.
  TrainableTextEncoder longer(WordTokenizer({"red", "blue", "ball", "cube"}, 12), TextEncoderConfig{32, 4, 2, 12});
  {
    torch::NoGradGuard ng;
    auto src = enc.module()->named_parameters();
    for (auto& p : longer.module()->named_parameters()) {
      if (p.key() == "position_embedding.weight") {
        p.value().narrow(0, 0, 8).copy_(src[p.key()]);
      } else {
        p.value().copy_(src[p.key()]);
      }
    }
  }
  auto c2 = longer.Encode({"red ball"});
  EXPECT_TRUE(torch::allclose(c2->tokens[0].narrow(0, 0, 3), c->tokens[0].narrow(0, 0, 3), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(c2->pooled[0], c->pooled[0], 1e-5, 1e-6));
  c->pooled.sum().backward();
  for (const auto& p : enc.module()->parameters()) ASSERT_TRUE(p.grad().defined());
}

TEST(PrecomputedTextEncoder, RoundTripsAndLooksUpByPrompt) {
  Conditioning e;
  e.tokens = torch::randn({3, 4, 6});
  e.token_mask = torch::tensor({{1, 1, 0, 0}, {1, 0, 0, 0}, {1, 1, 1, 1}}, torch::kBool);
  e.pooled = torch::randn({3, 5});
  const std::string path = Tmp("text.h5");
  ASSERT_TRUE(WritePrecomputedTextEmbeddings(path, {"", "a red ball", "two blue cubes"}, e).ok());
  auto enc = PrecomputedTextEncoder::Load(path);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->size(), 3);
  auto c = (*enc)->Encode({"two blue cubes", ""});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(torch::equal(c->tokens[0], e.tokens[2]));
  EXPECT_TRUE(torch::equal(c->tokens[1], e.tokens[0]));
  EXPECT_TRUE(torch::equal(c->token_mask[1], e.token_mask[0]));
  EXPECT_TRUE(torch::equal(c->pooled[0], e.pooled[2]));
  auto missing = (*enc)->Encode({"a green pyramid"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("a green pyramid"), std::string::npos);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(PrecomputedTextEncoder, ReadsLengthsInsteadOfAMaskAndRowsOnDemand) {
  // The layout the README's h5py snippet writes: /lengths instead of /token_mask.
  const std::string path = Tmp("lengths.h5");
  auto tokens = torch::randn({3, 4, 6});
  {
    auto file = hpc::h5::CreateFile(path);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE(hpc::h5::WriteStrings(file->id(), "prompts", {"a", "b", ""}).ok());
    ASSERT_TRUE(hpc::h5::WriteDataset<float>(file->id(), "tokens", {3, 4, 6}, tokens.data_ptr<float>()).ok());
    std::vector<int64_t> lengths = {2, 4, 1};
    ASSERT_TRUE(hpc::h5::WriteDataset<int64_t>(file->id(), "lengths", {3}, lengths.data()).ok());
  }
  auto enc = PrecomputedTextEncoder::Load(path);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->max_real_tokens(), 4);
  auto c = (*enc)->Encode({"b", "a", "b"});  // any order, repeats allowed
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(torch::equal(c->tokens[0], tokens[1]));
  EXPECT_TRUE(torch::equal(c->tokens[1], tokens[0]));
  EXPECT_TRUE(torch::equal(c->tokens[2], tokens[1]));
  EXPECT_TRUE(torch::equal(c->token_mask[1], torch::tensor({1, 1, 0, 0}, torch::kBool)));
  // A file cut short is refused at Load, not half-way through a run.
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(Tmp("cut.h5"), std::ios::binary) << bytes.substr(0, bytes.size() - 200);
  }
  EXPECT_FALSE(PrecomputedTextEncoder::Load(Tmp("cut.h5")).ok());
}

TEST(PrecomputedTextEncoder, RejectsBadFilesNamingTheProblem) {
  const std::string junk = Tmp("junk.h5");
  std::ofstream(junk) << "not hdf5";
  auto a = PrecomputedTextEncoder::Load(junk);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find(junk), std::string::npos);

  Conditioning e;
  e.tokens = torch::randn({2, 3, 4});
  e.token_mask = torch::tensor({{1, 0, 0}, {0, 0, 0}}, torch::kBool);
  const std::string empty_row = Tmp("empty_row.h5");
  ASSERT_TRUE(WritePrecomputedTextEmbeddings(empty_row, {"x", "y"}, e).ok());
  auto b = PrecomputedTextEncoder::Load(empty_row);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("token_mask"), std::string::npos) << b.status();

  e.token_mask = torch::ones({2, 3}, torch::kBool);
  const std::string dup = Tmp("dup.h5");
  ASSERT_TRUE(WritePrecomputedTextEmbeddings(dup, {"same", "same"}, e).ok());
  auto c = PrecomputedTextEncoder::Load(dup);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("twice"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo::models
