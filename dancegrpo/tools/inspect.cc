// inspect: summarises and verifies a DanceGRPO HDF5 file: a checkpoint (ckpt-*.h5) or a
// trajectory shard segment (seg-*.h5). Every dataset is read, so every checksum is
// checked; a bad file exits 1 with a message naming the file and the problem.
//   inspect FILE
//   inspect FILE --compare=OTHER [--rtol=0]     # model/optimizer/EMA equal within rtol?
#include <cstdio>
#include <string>

#include "dancegrpo/checkpoint.h"
#include "dancegrpo/trajectory_store.h"
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

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("inspect FILE [--compare=OTHER --rtol=X]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc != 2) return Fail("usage: inspect FILE [--compare=OTHER] [--rtol=X]");
  const std::string path = argv[1];
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
