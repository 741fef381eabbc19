#include "dancegrpo/io/run_report.h"
#include "dancegrpo/io/mp4.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace dancegrpo::io {
namespace {

std::string Dir(const std::string& name) {
  const std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::system(("rm -rf " + d + " && mkdir -p " + d).c_str());
  return d;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

IterationMetrics Metrics(int64_t iteration, double reward) {
  IterationMetrics m;
  m.iteration = iteration;
  m.samples = 16;
  m.reward_names = {"alignment"};
  m.reward_mean = {reward};
  m.reward_std = {0.25};
  m.update.trained_pairs = 32;
  m.update.mean_ratio = 1;
  m.seconds = 2;
  return m;
}

// Four samples of two prompts (two each), scored.
IterationRecord Record(int64_t iteration, double reward) {
  IterationRecord r;
  r.metrics = Metrics(iteration, reward);
  r.trajectories.prompt_slot = {0, 0, 1, 1};
  r.trajectories.member = {0, 1, 0, 1};
  r.prompt_texts = {"a", "a", "b", "b"};
  r.clips = torch::arange(4, torch::kFloat32).reshape({4, 1, 1, 1, 1}).expand({4, 3, 2, 8, 8}).contiguous() / 4;
  r.reward_names = {"alignment"};
  r.scores = {{0.5, 0.25, 0.75, 1.0}};
  return r;
}

TEST(RunReport, ShowsTheFirstSampleOfEachPrompt) {
  const auto shown = ShowcaseOf(Record(0, 0.1));
  ASSERT_EQ(shown.prompts, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(shown.clips.size(0), 2);
  EXPECT_EQ(shown.clips[1].max().item<float>(), 0.5f) << "sample 2 is prompt b's first";
  EXPECT_EQ(shown.rewards, (std::vector<std::vector<double>>{{0.5}, {0.75}}));
  EXPECT_EQ(ShowcaseOf(Record(0, 0.1), 1).prompts.size(), 1u) << "at most max_prompts";
  IterationRecord replayed = Record(0, 0.1);
  replayed.clips = torch::Tensor();
  EXPECT_EQ(ShowcaseOf(replayed).prompts.size(), 0u) << "a replayed iteration has no clips to show";
}

TEST(RunReport, WritesMetricsCurvesSamplesAndEvents) {
  ReportOptions o;
  o.out = Dir("report");
  o.iterations = 4;
  o.sample_every = 2;
  o.flops_per_forward = 1e12;  // 1 TFLOP a forward: (16 x 3 + 3 x 32) TFLOP in 2 s on 2 ranks
  o.steps = 3;
  o.world_size = 2;
  auto report = RunReport::Create(o);
  ASSERT_TRUE(report.ok()) << report.status();
  for (int64_t i = 0; i < 4; ++i) ASSERT_TRUE((*report)->OnIteration(Record(i, 0.1 * i)).ok());
  (*report)->Finish(0, 4);
  std::istringstream lines(Read(o.out + "/metrics.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_EQ(line.rfind("{\"iteration\": " + std::to_string(n), 0), 0u) << line;
    EXPECT_NE(line.find("\"model_tflops_per_rank\": 36}"), std::string::npos) << line;
    ++n;
  }
  EXPECT_EQ(n, 4);
  for (const char* f : {"reward_curves.png", "samples/iter_000000.png", "samples/iter_000002.gif",
                        "samples/iter_000003.png", "samples/iter_000002/00.mp4"})
    EXPECT_FALSE(Read(o.out + "/" + f).empty()) << f;
  EXPECT_TRUE(Read(o.out + "/samples/iter_000001.png").empty()) << "sample_every = 2";
}

TEST(SampleWriter, EachFormatWritesTheSheetAndRefusesAnEmptyOne) {
  const std::string d = Dir("writers");
  const auto shown = ShowcaseOf(Record(0, 0.1));
  SampleSheet sheet{{{shown.clips[0], {"a"}}, {shown.clips[1], {"b"}}}, 2, "TITLE"};
  for (const auto& writer : DefaultSampleWriters()) {
    ASSERT_TRUE(writer->Write(d + "/sheet", sheet).ok()) << writer->extension();
    const std::string path = writer->PathFor(d + "/sheet");
    if (writer->extension() == "mp4") {  // a folder, one clip a file, every frame kept
      for (int i = 0; i < 2; ++i) {
        auto frames = ReadVideoFrames(path + "0" + std::to_string(i) + ".mp4");
        ASSERT_TRUE(frames.ok()) << frames.status();
        EXPECT_EQ(frames->size(0), shown.clips[i].size(1));
      }
    } else {
      EXPECT_FALSE(Read(path).empty()) << writer->extension();
    }
    EXPECT_FALSE(writer->Write(d + "/empty", SampleSheet{}).ok()) << writer->extension();
  }
  // The PNG strip is the preview grid of the sheet's clips, byte for byte.
  ASSERT_TRUE(WritePng(d + "/direct.png", PreviewGrid(shown.clips)).ok());
  EXPECT_EQ(Read(d + "/sheet.png"), Read(d + "/direct.png"));
}

TEST(RunReport, AResumedRunKeepsTheMetricsBeforeItsIteration) {
  const std::string d = Dir("resume");
  std::ofstream(d + "/metrics.jsonl") << MetricsJson(Metrics(0, 0.1), 0) << "\n"
                                      << MetricsJson(Metrics(1, 0.2), 0) << "\n"
                                      << MetricsJson(Metrics(2, 0.3), 0) << "\n";
  KeepMetricsBefore(d + "/metrics.jsonl", 2);
  const std::string kept = Read(d + "/metrics.jsonl");
  EXPECT_NE(kept.find("\"iteration\": 1,"), std::string::npos);
  EXPECT_EQ(kept.find("\"iteration\": 2,"), std::string::npos);
}

TEST(RunReport, MemoryTableSetsEachRankBesideThePlan) {
  MemoryPlan plan;
  plan.phases = {{"load", 1000000000}, {"rollout", 2000000000}};
  const std::string t = FormatMeasuredMemory({"load", "rollout"}, {1.1e9, 2.0e9, 1.0e9, 2.5e9}, 2, plan);
  EXPECT_NE(t.find("rank 1"), std::string::npos) << t;
  EXPECT_NE(t.find("25.0%"), std::string::npos) << "rollout: rank 1 at 2.5 GB against 2 GB planned\n" << t;
  EXPECT_NE(t.find("10.0%"), std::string::npos) << "load: rank 0 at 1.1 GB against 1 GB\n" << t;
}

}  // namespace
}  // namespace dancegrpo::io
