#include "dancegrpo/trainable.h"

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

const std::vector<std::string> kNames = {"patch_embedding.weight", "blocks.0.ffn.0.weight", "blocks.1.ffn.0.weight",
                                         "blocks.10.norm3.weight", "blocks.11.modulation", "head.head.weight",
                                         "head.modulation", "headroom.weight"};

std::vector<bool> Select(const std::string& spec) {
  auto s = SelectTrainable(kNames, spec);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::vector<bool>();
}

TEST(Trainable, EmptySpecTrainsEverything) { EXPECT_EQ(Select(""), std::vector<bool>(kNames.size(), true)); }

TEST(Trainable, RangesAndPrefixesMatchWholeComponents) {
  EXPECT_EQ(Select("blocks.1-10,head"), (std::vector<bool>{false, false, true, true, false, true, true, false}));
  EXPECT_EQ(Select("blocks.1"), (std::vector<bool>{false, false, true, false, false, false, false, false}))
      << "blocks.1 is not blocks.10 or blocks.11";
  EXPECT_EQ(Select("blocks.11.modulation, patch_embedding"),
            (std::vector<bool>{true, false, false, false, true, false, false, false}));
}

TEST(Trainable, BadPatternsAreNamed) {
  auto none = SelectTrainable(kNames, "blocks.30-39");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("'blocks.30-39' matches no parameter"), std::string::npos) << none.status();
  EXPECT_NE(none.status().message().find("blocks, head, headroom, patch_embedding"), std::string::npos);
  auto range = SelectTrainable(kNames, "blocks.9-2");
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("A <= B"), std::string::npos) << range.status();
  EXPECT_FALSE(SelectTrainable(kNames, "blocks..ffn").ok());
}

}  // namespace
}  // namespace dancegrpo
