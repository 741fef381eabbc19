// gflags and glog smoke test: flags parse (and reject bad values), and glog writes its
// log file where it is told to.
#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

DEFINE_int32(smoke_iterations, 3, "iterations, for the smoke test");
DEFINE_string(smoke_name, "default", "a name, for the smoke test");
DEFINE_double(smoke_lr, 1e-5, "a learning rate, for the smoke test");

namespace {

TEST(FlagsSmoke, ParsesFlagsAndKeepsPositionalArguments) {
  std::vector<std::string> storage = {"prog", "--smoke_iterations=7", "--smoke_name=wan", "prompts.txt",
                                      "--smoke_lr", "0.25"};
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  int argc = static_cast<int>(argv.size());
  char** argv_ptr = argv.data();
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv_ptr, /*remove_flags=*/true);
  EXPECT_EQ(FLAGS_smoke_iterations, 7);
  EXPECT_EQ(FLAGS_smoke_name, "wan");
  EXPECT_DOUBLE_EQ(FLAGS_smoke_lr, 0.25);
  ASSERT_EQ(argc, 2);
  EXPECT_STREQ(argv_ptr[1], "prompts.txt");
}

TEST(FlagsSmoke, RejectsMalformedValue) {
  const std::string result = gflags::SetCommandLineOption("smoke_iterations", "seven");
  EXPECT_TRUE(result.empty()) << "a non-integer value must be refused";
  EXPECT_NE(FLAGS_smoke_iterations, 0);
}

TEST(LoggingSmoke, WritesLogFileToLogDir) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/glog";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  FLAGS_log_dir = dir;
  FLAGS_logtostderr = false;
  google::InitGoogleLogging("flags_logging_test");
  LOG(INFO) << "dancegrpo-smoke-marker-4711";
  google::FlushLogFiles(google::GLOG_INFO);

  bool found = false;
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.find("INFO") == std::string::npos) continue;
    std::ifstream in(dir + "/" + name);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find("dancegrpo-smoke-marker-4711") != std::string::npos) found = true;
  }
  closedir(d);
  EXPECT_TRUE(found) << "no INFO log in " << dir << " holds the marker";
  google::ShutdownGoogleLogging();
}

}  // namespace
