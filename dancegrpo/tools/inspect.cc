// inspect: summarises and verifies a file that train writes: a checkpoint (ckpt-*.h5), a
// trajectory shard segment (seg-*.h5), or a TensorBoard event file (events.out.tfevents.*).
// Every dataset or record is read, so every checksum is checked; a bad file exits 1 with a
// message naming the file and the problem.
//   inspect FILE
//   inspect FILE --compare=OTHER [--rtol=0]     # model/optimizer/EMA equal within rtol?
#include <cstdio>
#include <map>
#include <string>

#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/io/tensorboard.h"
#include "dancegrpo/io/tensorboard.pb.h"
#include "dancegrpo/io/trajectory_store.h"
#include "gflags/gflags.h"
#include "hpc/h5/h5.h"

DEFINE_string(compare, "", "another checkpoint to compare against");
DEFINE_double(rtol, 0.0, "largest accepted max|a-b|/max|b| for --compare (0 = bit-identical)");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "inspect: %s\n", message.c_str());
  return 1;
}

int InspectShard(const std::string& path) {
  auto iterations = dancegrpo::ListStoredIterations(path);
  if (!iterations.ok()) return Fail(std::string(iterations.status().message()));
  std::printf("%s: trajectory shard, %zu iteration(s)\n", path.c_str(), iterations->size());
  for (int64_t it : *iterations) {
    auto r = dancegrpo::ReadTrajectoryRecord(path, it);
    if (!r.ok()) return Fail(std::string(r.status().message()));
    std::string rewards;
    for (size_t k = 0; k < r->reward_names.size(); ++k)
      rewards += " " + r->reward_names[k] + "=" + std::to_string(r->rewards[k].mean().item<double>());
    std::printf("  iteration %ld: rank %d/%d, %ld samples, %ld steps, latents %s, %zu trained,%s\n",
                static_cast<long>(it), r->rank, r->world_size, static_cast<long>(r->latents.size(0)),
                static_cast<long>(r->log_probs.size(1)), c10::str(r->latents.sizes()).c_str(), r->trained.size(),
                rewards.c_str());
  }
  std::printf("OK: every dataset read and checksum-verified\n");
  return 0;
}

// A TensorBoard event file: every record's CRCs, then each tag's count and last value.
int InspectEvents(const std::string& path) {
  auto records = dancegrpo::ReadRecords(path);
  if (!records.ok()) return Fail(std::string(records.status().message()));
  struct Series {
    int64_t count = 0, last_step = 0;
    double last = 0;
    bool image = false;
    int width = 0, height = 0;
  };
  std::map<std::string, Series> tags;
  std::string version;
  int64_t first_step = -1, last_step = -1;
  for (size_t i = 0; i < records->size(); ++i) {
    dancegrpo::tensorboard::Event e;
    if (!e.ParseFromString((*records)[i]))
      return Fail(path + ": record " + std::to_string(i) + " has valid CRCs but is not an Event message");
    if (e.has_file_version()) version = e.file_version();
    if (!e.has_summary()) continue;
    if (first_step < 0) first_step = e.step();
    last_step = e.step();
    for (const auto& v : e.summary().value()) {
      auto& t = tags[v.tag()];
      ++t.count;
      t.last_step = e.step();
      if (v.has_image()) {
        t.image = true;
        t.width = v.image().width();
        t.height = v.image().height();
      } else {
        t.last = v.simple_value();
      }
    }
  }
  std::printf("%s: TensorBoard event file (%s), %zu records, steps %ld..%ld\n", path.c_str(),
              version.empty() ? "no file version" : version.c_str(), records->size(), static_cast<long>(first_step),
              static_cast<long>(last_step));
  for (const auto& [tag, t] : tags) {
    if (t.image)
      std::printf("  %s: %ld images, the last %dx%d (step %ld)\n", tag.c_str(), static_cast<long>(t.count), t.width,
                  t.height, static_cast<long>(t.last_step));
    else
      std::printf("  %s: %ld values, the last %.6g (step %ld)\n", tag.c_str(), static_cast<long>(t.count), t.last,
                  static_cast<long>(t.last_step));
  }
  std::printf("OK: every record read and CRC-verified\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("inspect FILE [--compare=OTHER --rtol=X]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc != 2) return Fail("usage: inspect FILE [--compare=OTHER] [--rtol=X]");
  const std::string path = argv[1];
  if (path.find("tfevents") != std::string::npos) return InspectEvents(path);
  auto file = dancegrpo::hpc::h5::OpenFile(path);
  if (!file.ok()) return Fail(std::string(file.status().message()));
  auto kind = dancegrpo::hpc::h5::ReadStringAttribute(file->id(), "dancegrpo_kind");
  file->Close();
  if (!kind.ok())
    return Fail(path + " is an HDF5 file but not one of DanceGRPO's (no dancegrpo_kind attribute)");
  if (*kind == "trajectory_shard") return InspectShard(path);
  auto s = dancegrpo::VerifyCheckpoint(path);
  if (!s.ok()) return Fail(std::string(s.status().message()));
  std::printf("%s: checkpoint before iteration %ld, written by %ld ranks\n", path.c_str(),
              static_cast<long>(s->iteration), static_cast<long>(s->world_size));
  std::printf("  %ld parameters in %ld tensors, optimizer moments%s\n  %s\n", static_cast<long>(s->parameters),
              static_cast<long>(s->tensors), s->has_ema ? ", EMA" : "", s->versions.c_str());
  std::printf("  config:\n");
  for (size_t i = 0, j; i < s->config.size(); i = j + 1) {
    j = s->config.find('\n', i);
    if (j == std::string::npos) j = s->config.size();
    std::printf("    %s\n", s->config.substr(i, j - i).c_str());
  }
  std::printf("OK: every dataset read and checksum-verified\n");
  if (!FLAGS_compare.empty()) {
    auto diff = dancegrpo::CompareCheckpoints(path, FLAGS_compare);
    if (!diff.ok()) return Fail(std::string(diff.status().message()));
    std::printf("compare with %s: max relative difference %.3g (%s)\n", FLAGS_compare.c_str(), *diff,
                *diff == 0 ? "bit-identical" : (*diff <= FLAGS_rtol ? "within rtol" : "DIFFERENT"));
    if (*diff > FLAGS_rtol) return 3;
  }
  return 0;
}
