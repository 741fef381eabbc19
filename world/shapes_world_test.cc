#include "world/shapes_world.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace dancegrpo::world {
namespace {

bool Contains(const torch::Tensor& set, const torch::Tensor& clip) {
  return (set - clip.unsqueeze(0)).abs().flatten(1).amax(1).eq(0).any().item<bool>();
}

TEST(EnumerateClips, SizesAreTheCountsOfStartPositions) {
  ClipSpec one;  // one square moving left: x in [3, 7] (travel 3 to the left), y in [0, 7]
  one.count = 1;
  one.motion = Motion::kLeft;
  EXPECT_EQ(EnumerateClips(one).size(0), 5 * 8);
  ClipSpec two = one;  // two objects moving up: columns {0, 1} and {6, 7}, rows [3, 7] each
  two.count = 2;
  two.motion = Motion::kUp;
  EXPECT_EQ(EnumerateClips(two).size(0), (2 * 5) * (2 * 5));
  EXPECT_EQ(EnumerateClips(two).sizes().slice(1).vec(), ClipShape());
}

TEST(EnumerateClips, HoldsEveryRenderedClipAndNoDuplicates) {
  for (const auto& spec : AllSpecs()) {
    if (spec.colour != 0) continue;  // the colour only repaints; 32 specs cover the rest
    auto all = EnumerateClips(spec);
    for (uint64_t seed = 0; seed < 300; ++seed)
      ASSERT_TRUE(Contains(all, Render(spec, seed))) << PromptText(spec) << " seed " << seed;
    auto flat = all.flatten(1);
    auto distance = torch::cdist(flat, flat);
    EXPECT_EQ(distance.eq(0).sum().item<int64_t>(), all.size(0)) << "duplicate clips for " << PromptText(spec);
  }
}

}  // namespace
}  // namespace dancegrpo::world
