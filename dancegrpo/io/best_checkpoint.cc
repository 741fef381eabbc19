#include "dancegrpo/io/best_checkpoint.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/io/checkpoint.h"
#include "hpc/atomic_file.h"

namespace dancegrpo::io {
namespace {

// A reward mean as metrics.jsonl stores it (%.6g, dancegrpo/io/run_report.cc), so that the
// scores a resumed run rebuilds from that file equal those the uninterrupted run computed.
double AsStored(double v) {
  double out = v;
  (void)absl::SimpleAtod(absl::StrFormat("%.6g", v), &out);
  return out;
}

bool FileExists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// `tmp` as a hard link to `from`, or a byte copy where the file system refuses links.
absl::Status LinkOrCopy(const std::string& from, const std::string& tmp) {
  std::remove(tmp.c_str());
  if (link(from.c_str(), tmp.c_str()) == 0) return absl::OkStatus();
  const std::string why = std::strerror(errno);
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(tmp, std::ios::binary);
  out << in.rdbuf();
  out.close();
  if (!in || !out) {
    std::remove(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot link (", why, ") or copy ", from, " to ", tmp));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> BestWindow(int best_window, int checkpoint_every) {
  if (best_window < 0)
    return absl::InvalidArgumentError(absl::StrCat("--best_window=", best_window, " is negative; use N >= 1 iterations, "
                                                   "or 0 for --checkpoint_every"));
  if (checkpoint_every <= 0)
    return absl::InvalidArgumentError(
        "--keep_best chooses among periodic checkpoints, and --checkpoint_every is 0 (only the last is written); "
        "set --checkpoint_every=N");
  return best_window > 0 ? best_window : checkpoint_every;
}

absl::StatusOr<std::unique_ptr<BestCheckpoint>> BestCheckpoint::Open(
    const std::string& checkpoint_dir, const std::string& metrics_path, int window,
    std::vector<std::pair<std::string, double>> weights, int64_t start_iteration) {
  if (window < 1) return absl::InvalidArgumentError(absl::StrCat("best checkpoint window ", window, " < 1"));
  std::unique_ptr<BestCheckpoint> b(new BestCheckpoint(checkpoint_dir, window, std::move(weights)));
  // The rewards of the iterations before the start, as metrics.jsonl recorded them.
  int unreadable = 0;
  if (std::ifstream in(metrics_path); in && start_iteration > 0) {
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.contains("iteration") || !j.contains("rewards") || !j["iteration"].is_number_integer() ||
          !j["rewards"].is_object()) {
        ++unreadable;
        continue;
      }
      const int64_t it = j["iteration"].get<int64_t>();
      if (it >= start_iteration) continue;
      std::map<std::string, double> means;
      for (const auto& [name, r] : j["rewards"].items())
        if (r.is_object() && r.contains("mean") && r["mean"].is_number()) means[name] = r["mean"].get<double>();
      if (const auto w = b->Weighted(means)) b->reward_[it] = *w;
    }
  }
  if (unreadable > 0)
    b->notice_ = absl::StrCat(unreadable, " line(s) of ", metrics_path,
                              " are not metrics; the best checkpoint's windows that need them are not scored");
  // The best so far: best.h5's iteration, if it is of this timeline.
  const std::string best = b->BestPath();
  if (FileExists(best)) {
    auto it = ReadCheckpointIteration(best);
    if (!it.ok() || *it > start_iteration) {
      std::remove(best.c_str());
      absl::StrAppend(&b->notice_, b->notice_.empty() ? "" : "; ", best,
                      !it.ok() ? absl::StrCat(" is unreadable (", it.status().message(), "); dropped")
                               : absl::StrCat(" (before iteration ", *it, ") is not of this run up to iteration ",
                                              start_iteration, "; dropped"));
    } else {
      b->best_iteration_ = *it;
      b->best_score_ = b->Score(*it);
    }
  }
  return b;
}

std::optional<double> BestCheckpoint::Weighted(const std::map<std::string, double>& means) const {
  double sum = 0;
  for (const auto& [name, weight] : weights_) {
    const auto found = means.find(name);
    if (found == means.end()) return std::nullopt;
    sum += weight * found->second;
  }
  return sum;
}

void BestCheckpoint::Observe(const IterationMetrics& m) {
  std::map<std::string, double> means;
  for (size_t k = 0; k < m.reward_names.size() && k < m.reward_mean.size(); ++k)
    means[m.reward_names[k]] = AsStored(m.reward_mean[k]);
  if (const auto w = Weighted(means)) reward_[m.iteration] = *w;
}

std::optional<double> BestCheckpoint::Score(int64_t iteration) const {
  if (iteration < window_) return std::nullopt;
  double sum = 0;
  for (int64_t it = iteration - window_; it < iteration; ++it) {
    const auto found = reward_.find(it);
    if (found == reward_.end()) return std::nullopt;
    sum += found->second;
  }
  return sum / window_;
}

absl::StatusOr<std::optional<std::string>> BestCheckpoint::Consider(const std::string& path, int64_t iteration) {
  const auto score = Score(iteration);
  if (!score) return std::nullopt;
  if (best_iteration_ >= 0 && best_score_ && *score <= *best_score_) return std::nullopt;
  const std::string best = BestPath(), tmp = hpc::TemporaryPathFor(best);
  if (auto s = LinkOrCopy(path, tmp); !s.ok()) return s;
  if (auto s = hpc::CommitFile(tmp, best); !s.ok()) return s;
  best_iteration_ = iteration;
  best_score_ = score;
  return Describe();
}

std::string BestCheckpoint::Describe() const {
  if (best_iteration_ < 0) return absl::StrCat(BestPath(), ": none yet (no full window of ", window_, " iterations)");
  if (!best_score_)
    return absl::StrCat(BestPath(), " = the checkpoint before iteration ", best_iteration_,
                        " (its window's rewards are not in metrics.jsonl)");
  return absl::StrFormat("%s = the checkpoint before iteration %d (mean weighted training reward %.4f over iterations "
                         "%d-%d)",
                         BestPath(), best_iteration_, *best_score_, best_iteration_ - window_, best_iteration_ - 1);
}

}  // namespace dancegrpo::io
