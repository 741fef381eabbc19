#include "hpc/h5/h5.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace dancegrpo::hpc::h5 {
namespace {

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

TEST(H5, RoundTripsDatasetsStringsAndAttributes) {
  const std::string path = TempPath("roundtrip.h5");
  {
    auto f = CreateFile(path);
    ASSERT_TRUE(f.ok()) << f.status();
    auto g = CreateGroup(f->id(), "grp");
    ASSERT_TRUE(g.ok());
    const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f};
    ASSERT_TRUE(WriteDataset<float>(g->id(), "values", {2, 3}, values.data(), /*deflate=*/4).ok());
    const std::vector<int64_t> ids = {5, 9};
    ASSERT_TRUE(WriteDataset<int64_t>(f->id(), "ids", {2}, ids.data()).ok());
    ASSERT_TRUE(WriteStrings(f->id(), "prompts", {"a red ball", "", "ünïcode"}).ok());
    ASSERT_TRUE(WriteAttribute(f->id(), "version", std::string("v1")).ok());
    ASSERT_TRUE(WriteAttribute(f->id(), "iteration", int64_t{42}).ok());
    ASSERT_TRUE(WriteAttribute(f->id(), "lr", 1e-5).ok());
  }
  auto f = OpenFile(path);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<hsize_t> dims;
  auto values = ReadDataset<float>(f->id(), "grp/values", &dims);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(dims, (std::vector<hsize_t>{2, 3}));
  EXPECT_EQ(*values, (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f}));
  EXPECT_EQ(*ReadDataset<int64_t>(f->id(), "ids"), (std::vector<int64_t>{5, 9}));
  EXPECT_EQ(*ReadStrings(f->id(), "prompts"), (std::vector<std::string>{"a red ball", "", "ünïcode"}));
  EXPECT_EQ(*ReadStringAttribute(f->id(), "version"), "v1");
  EXPECT_EQ(*ReadIntAttribute(f->id(), "iteration"), 42);
  EXPECT_EQ(*ReadDoubleAttribute(f->id(), "lr"), 1e-5);
  EXPECT_TRUE(Exists(f->id(), "grp/values"));
  EXPECT_FALSE(Exists(f->id(), "nope/values"));
}

TEST(H5, ErrorsNameTheProblem) {
  const std::string path = TempPath("errors.h5");
  {
    auto f = CreateFile(path);
    const std::vector<int32_t> ints = {1, 2};
    ASSERT_TRUE(WriteDataset<int32_t>(f->id(), "ints", {2}, ints.data()).ok());
  }
  auto f = OpenFile(path);
  auto missing = ReadDataset<float>(f->id(), "absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("absent"), std::string::npos);
  auto wrong = ReadDataset<float>(f->id(), "ints");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("ints"), std::string::npos) << wrong.status();
  auto attr = ReadIntAttribute(f->id(), "nothing");
  EXPECT_EQ(attr.status().code(), absl::StatusCode::kNotFound);

  const std::string junk = TempPath("junk.h5");
  std::ofstream(junk) << "this is not an HDF5 file";
  auto bad = OpenFile(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(junk), std::string::npos) << bad.status();
  auto none = OpenFile(TempPath("does_not_exist.h5"));
  EXPECT_FALSE(none.ok());
}

}  // namespace
}  // namespace dancegrpo::hpc::h5
