// Checkpoint and trajectory files on one process: bad files are refused with an error
// naming the file and the problem; model-shape changes are refused and compatible config
// changes reported; a stored iteration replays with ratio == 1 and reproduces the update.
#include <hdf5.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/rollout.h"
#include "world/toy_world.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/io/trajectory_store.h"
#include "gtest/gtest.h"
#include "hpc/h5/h5.h"
#include "models/mlp_velocity.h"

namespace dancegrpo {
namespace {

const std::vector<int64_t> kShape = {4, 1, 2, 2};

std::string Dir(const std::string& name) {
  const std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  EXPECT_EQ(std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str()), 0);
  return d;
}

TrainerConfig Config() {
  TrainerConfig c;
  c.seed = 3;
  c.iterations = 2;
  c.prompts_per_iteration = 2;
  c.group_size = 4;
  c.steps = 6;
  c.micro_batch = 4;
  c.optimizer.lr = 1e-2;
  c.optimizer.ema = true;
  c.latent_shape = kShape;
  return c;
}

std::unique_ptr<Trainer> Make(const TrainerConfig& c, int64_t hidden = 64) {
  torch::manual_seed(c.seed);
  models::MlpVelocityConfig mc;
  mc.latent_shape = kShape;
  mc.condition_dim = 4;
  mc.hidden = hidden;
  auto t = Trainer::Create(c, std::make_shared<models::MlpVelocity>(mc), nullptr,
                           std::make_shared<toy::OneHotPromptEncoder>(4), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(4, kShape, 1), 1.0}}, toy::TargetPrompts(4));
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

std::string Read(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void Write(const std::string& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// A committed checkpoint after one iteration, in a fresh directory.
std::string SavedCheckpoint(const std::string& name) {
  auto t = Make(Config());
  EXPECT_TRUE(t->Step().ok());
  auto path = SaveCheckpoint(*t, Dir(name), 3);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

TEST(CheckpointFiles, RoundTripRestoresEverythingBitwise) {
  auto a = Make(Config());
  ASSERT_TRUE(a->Step().ok());
  auto path = SaveCheckpoint(*a, Dir("roundtrip"), 3);
  ASSERT_TRUE(path.ok()) << path.status();
  auto b = Make(Config());
  auto report = LoadCheckpoint(*b, *path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->iteration, 1);
  EXPECT_TRUE(report->config_changes.empty());
  EXPECT_EQ(b->iteration(), 1);
  // Both continue identically.
  ASSERT_TRUE(a->Step().ok());
  ASSERT_TRUE(b->Step().ok());
  auto pa = a->policy().parameters(), pb = b->policy().parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
  EXPECT_TRUE(torch::equal(a->optimizer().exp_avg_sq(), b->optimizer().exp_avg_sq()));
  EXPECT_TRUE(torch::equal(a->optimizer().ema_shard(), b->optimizer().ema_shard()));
  EXPECT_EQ(*LatestCheckpoint(std::string(std::getenv("TEST_TMPDIR")) + "/roundtrip"), *path);
}

TEST(CheckpointFiles, KeepsTheNewestK) {
  auto t = Make(Config());
  const std::string dir = Dir("keep");
  for (int i = 0; i < 4; ++i) {
    t->set_iteration(i);
    ASSERT_TRUE(SaveCheckpoint(*t, dir, 2).ok());
  }
  EXPECT_EQ(*LatestCheckpoint(dir), CheckpointPath(dir, 3));
  EXPECT_FALSE(hpc::h5::OpenFile(CheckpointPath(dir, 1)).ok());
  EXPECT_TRUE(hpc::h5::OpenFile(CheckpointPath(dir, 2)).ok());
  EXPECT_EQ(LatestCheckpoint(Dir("empty")).status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointFiles, TruncatedFileIsRefusedNamingIt) {
  const std::string path = SavedCheckpoint("truncated");
  const std::string bytes = Read(path);
  const std::string cut = path + ".cut.h5";
  Write(cut, bytes.substr(0, bytes.size() / 2));
  auto t = Make(Config());
  auto s = LoadCheckpoint(*t, cut);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(cut), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("truncated"), std::string::npos) << s.status();
  EXPECT_FALSE(VerifyCheckpoint(cut).ok());
}

TEST(CheckpointFiles, FlippedBytesInDataFailTheChecksum) {
  const std::string path = SavedCheckpoint("flipped");
  haddr_t address = 0;
  {
    auto f = hpc::h5::OpenFile(path);
    ASSERT_TRUE(f.ok());
    hpc::h5::Handle d(H5Dopen2(f->id(), "optimizer/exp_avg_sq", H5P_DEFAULT));
    hsize_t offset[1] = {0};
    unsigned mask = 0;
    hsize_t size = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(d.id(), offset, &mask, &address, &size), 0);
  }
  std::string bytes = Read(path);
  bytes[address + 40] ^= 0x5a;
  const std::string bad = path + ".flipped.h5";
  Write(bad, bytes);
  auto v = VerifyCheckpoint(bad);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find(bad), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("optimizer/exp_avg_sq"), std::string::npos) << v.status();
  auto t = Make(Config());
  EXPECT_FALSE(LoadCheckpoint(*t, bad).ok());
  // A flipped signature byte: not HDF5 any more.
  std::string sig = Read(path);
  sig[1] ^= 0x20;
  Write(bad, sig);
  auto s = LoadCheckpoint(*t, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not an HDF5 file"), std::string::npos) << s.status();
}

TEST(CheckpointFiles, ForeignHdf5FilesAreRefused) {
  const std::string dir = Dir("foreign");
  const std::string foreign = dir + "/foreign.h5";
  {
    auto f = hpc::h5::CreateFile(foreign);
    const std::vector<float> v = {1, 2, 3};
    ASSERT_TRUE(hpc::h5::WriteDataset<float>(f->id(), "data", {3}, v.data()).ok());
  }
  auto t = Make(Config());
  auto s = LoadCheckpoint(*t, foreign);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not a DanceGRPO checkpoint"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find(foreign), std::string::npos);
  auto shard = ReadTrajectoryRecord(foreign, 0);
  ASSERT_FALSE(shard.ok());
  EXPECT_NE(shard.status().message().find("not a DanceGRPO trajectory shard"), std::string::npos);
}

// A file from a newer writer (a later, incompatible layout) is refused with both versions
// named, never misread. (ZeRO-3 checkpoints keep schema 1: older readers load them.)
TEST(CheckpointFiles, NewerSchemaIsRefusedNamingTheVersions) {
  auto t = Make(Config());
  auto path = SaveCheckpoint(*t, Dir("schema"), 3);
  ASSERT_TRUE(path.ok()) << path.status();
  {
    const hid_t f = H5Fopen(path->c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    ASSERT_GE(a, 0);
    const int64_t newer = 2;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &newer), 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  auto s = LoadCheckpoint(*t, *path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("checkpoint schema 2, newer than this build reads (1)"), std::string::npos)
      << s.status();
}

TEST(CheckpointFiles, ModelShapeChangeRefusedLearningRateChangeReported) {
  const std::string path = SavedCheckpoint("compat");
  auto wider = Make(Config(), /*hidden=*/96);
  auto s = LoadCheckpoint(*wider, path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("model shape changed"), std::string::npos) << s.status();
  auto c = Config();
  c.optimizer.lr = 5e-3;
  auto t = Make(c);
  auto report = LoadCheckpoint(*t, path);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->config_changes.size(), 1u);
  EXPECT_NE(report->config_changes[0].find("lr: 0.01 -> 0.005"), std::string::npos) << report->config_changes[0];
}

struct ReplayCase {
  StoredLatents latents;
  SdeWindow window;  // size 0: every step is an SDE step
  const char* name;
};

class Replay : public ::testing::TestWithParam<ReplayCase> {};

TEST_P(Replay, StoredIterationReproducesLogProbsAndTheUpdate) {
  const std::string dir = Dir(std::string("replay_") + GetParam().name);
  auto config = Config();
  config.sde.window = GetParam().window;
  auto sampler = Make(config);
  auto writer = std::make_shared<TrajectoryWriter>(dir, 0, GetParam().latents);
  sampler->AddObserver(std::make_shared<TrajectoryShards>(writer, config));
  ASSERT_TRUE(sampler->Step().ok());
  ASSERT_TRUE(writer->CommitSegment().ok());
  auto segments = ListTrajectorySegments(dir);
  ASSERT_EQ(segments.size(), 1u);
  auto iterations = ListStoredIterations(segments[0]);
  ASSERT_EQ(*iterations, std::vector<int64_t>{0});
  auto record = ReadTrajectoryRecord(segments[0], 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->latents.size(0), 8);
  EXPECT_EQ(record->prompt_texts.size(), 8u);
  // floor(5 * 0.6) of the 5 trainable steps, or floor(3 * 0.6) of a 3-step window.
  EXPECT_EQ(record->timesteps.size(1), GetParam().window.all() ? 3 : 1);
  if (!GetParam().window.all()) {
    const auto window = WindowForIteration(GetParam().window, config.seed, 0, config.steps);
    for (int64_t i = 0; i < record->timesteps.size(0); ++i)
      EXPECT_TRUE(window.Contains(static_cast<int>(record->timesteps[i][0].item<int64_t>()))) << i;
  }

  // A learner with the sampler's initial weights replays the stored iteration.
  auto learner = Make(config);
  auto m = learner->ReplayStep(ToIterationRecord(*record));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->update.ratio_min, 1.0);
  EXPECT_EQ(m->update.ratio_max, 1.0);
  auto ps = sampler->policy().parameters(), pl = learner->policy().parameters();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(torch::equal(ps[i], pl[i])) << i;
}

INSTANTIATE_TEST_SUITE_P(Latents, Replay,
                         ::testing::Values(ReplayCase{StoredLatents::kAll, {}, "all"},
                                           ReplayCase{StoredLatents::kTrainedSteps, {}, "trained"},
                                           ReplayCase{StoredLatents::kTrainedSteps, {2, 3}, "window"},
                                           ReplayCase{StoredLatents::kTrainedSteps, {0, 3, true}, "random_window"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CheckpointFiles, NonFiniteWeightsAreNeverWritten) {
  auto trainer = Make(Config());
  const std::string dir = Dir("nan_ckpt");
  ASSERT_TRUE(SaveCheckpoint(*trainer, dir, 0).ok());
  {
    torch::NoGradGuard no_grad;
    auto named = trainer->policy().named_parameters();
    named[named.keys()[1]].view(-1)[3] = std::nanf("");
  }
  auto saved = SaveCheckpoint(*trainer, dir, 0);
  ASSERT_FALSE(saved.ok());
  const std::string name = trainer->policy().named_parameters().keys()[1];
  EXPECT_NE(saved.status().message().find(name + " (element 3)"), std::string::npos) << saved.status();
  EXPECT_NE(saved.status().message().find("lower --lr"), std::string::npos) << saved.status();
  // The good checkpoint is still the latest; no partial file was left behind.
  auto latest = LatestCheckpoint(dir);
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE(VerifyCheckpoint(*latest).ok());
}

}  // namespace
}  // namespace dancegrpo
