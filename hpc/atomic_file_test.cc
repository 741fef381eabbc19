#include "hpc/atomic_file.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace dancegrpo::hpc {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(AtomicFile, CommitReplacesDestinationAndRemovesTemporary) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const std::string path = dir + "/ckpt.h5";
  std::ofstream(path) << "old";
  const std::string tmp = TemporaryPathFor(path);
  EXPECT_EQ(tmp, dir + "/.ckpt.h5.tmp-" + std::to_string(getpid()));
  std::ofstream(tmp) << "new contents";
  ASSERT_TRUE(CommitFile(tmp, path).ok());
  EXPECT_EQ(Read(path), "new contents");
  EXPECT_NE(access(tmp.c_str(), F_OK), 0);
}

TEST(AtomicFile, WriteFileAtomicallyWritesBinaryContentsAndLeavesNoTemporary) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const std::string path = dir + "/image.gif";
  const std::string bytes("GIF89a\0\x01\xff", 9);
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  EXPECT_EQ(Read(path), bytes);
  EXPECT_NE(access(TemporaryPathFor(path).c_str(), F_OK), 0);
  auto status = WriteFileAtomically(dir + "/no_such_dir/x.gif", bytes);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no_such_dir"), std::string::npos) << status;
}

TEST(AtomicFile, FailureNamesPathsAndKeepsOldFile) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const std::string path = dir + "/missing_dir/out.h5";
  auto status = CommitFile(dir + "/no_such_tmp", path);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no_such_tmp"), std::string::npos) << status;
}

}  // namespace
}  // namespace dancegrpo::hpc
