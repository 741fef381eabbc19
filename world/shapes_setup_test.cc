#include "world/shapes_setup.h"

#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(ShapesBase, SavesAndLoadsEveryParameter) {
  auto saved = MakeShapesModels(1);
  const auto path = TempPath("base.safetensors");
  ASSERT_TRUE(SaveShapesBase(saved, path, "test").ok());
  auto loaded = MakeShapesModels(2);  // a different initialisation, overwritten by the file
  ASSERT_TRUE(LoadShapesBase(loaded, path).ok());
  auto want = saved.dit->named_parameters();
  ASSERT_TRUE(want.contains("stem1.weight"));
  for (const auto& p : loaded.dit->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
}

TEST(ShapesBase, ABaseFromBeforeTheStemSaysHowToRemakeIt) {
  ShapesModels old = MakeShapesModels(1);
  auto c = ShapesDitConfig();
  c.stem_channels = 0;  // the DiT as it was before 2026-11-26
  old.dit = std::make_shared<models::VideoDit>(c);
  const auto path = TempPath("old_base.safetensors");
  ASSERT_TRUE(SaveShapesBase(old, path, "test").ok());
  auto models = MakeShapesModels(1);
  const auto s = LoadShapesBase(models, path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("patch_embedding"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("configs/base/README.md"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace dancegrpo
