// --keep_best: the checkpoint whose preceding window of iterations had the highest mean
// training reward, kept as <checkpoints>/best.h5 beside the rotating ckpt-*.h5.
//
// Why: at a constant learning rate the policy keeps moving at full step to the end, and a
// run's last checkpoint is one draw of that walk; now and then the walk dips late (a
// run's training reward falls over its last 50 iterations and the held-out score with it:
// docs/experiments/2026-12-03-blas-and-learning-study.md). The trainer's own signal, the
// reward of its training samples, shows such a dip, so the run keeps the checkpoint that
// came after its best stretch. No held-out data is used.
//
// The score of the checkpoint saved before iteration p is the mean over iterations
// p - W .. p - 1 of the weighted training reward sum_k w_k mean_k (the weights the
// advantages use), W = the window. A checkpoint is a candidate only when all W iterations
// are known; a higher score (strictly) replaces the best. train offers its periodic checkpoints
// and the last, not one written for a stop signal (the resumed run's best is the uninterrupted one's). With an EMA of the weights
// (--ema) of about W iterations' horizon, the window covers what the EMA averages.
//
// Files: best.h5 is a hard link to the committed ckpt-IIIIII.h5 (a copy where links fail),
// put in place by one atomic rename, so rotation (--keep_checkpoints) never deletes it and a
// reader sees the old best or the new one. Nothing else is stored: on --resume the scores
// are rebuilt from metrics.jsonl (already cut back to the resumed iteration) and the best's
// iteration read from best.h5; a best.h5 from after the resumed iteration (another
// timeline) is dropped. Rank 0 alone keeps it; no collective.
#ifndef DANCEGRPO_DANCEGRPO_IO_BEST_CHECKPOINT_H_
#define DANCEGRPO_DANCEGRPO_IO_BEST_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dancegrpo/trainer.h"

namespace dancegrpo::io {

// The window: `best_window` iterations, or checkpoint_every when it is 0. Refuses a run that
// keeps a best without periodic checkpoints, or a negative window, naming the fix.
absl::StatusOr<int> BestWindow(int best_window, int checkpoint_every);

class BestCheckpoint : public IterationObserver {
 public:
  // `weights`: each reward's name and weight, as the run weighs them. `start_iteration`: the
  // iteration the run starts (or resumes) at; metrics.jsonl lines before it are read back.
  static absl::StatusOr<std::unique_ptr<BestCheckpoint>> Open(const std::string& checkpoint_dir,
                                                              const std::string& metrics_path, int window,
                                                              std::vector<std::pair<std::string, double>> weights,
                                                              int64_t start_iteration);

  absl::Status OnIteration(const IterationRecord& record) override {
    Observe(record.metrics);
    return absl::OkStatus();
  }
  void Observe(const IterationMetrics& m);

  // After the checkpoint before `iteration` was committed at `path`: makes it best.h5 when its
  // window scores higher than the best so far. Returns the line to print when it did.
  absl::StatusOr<std::optional<std::string>> Consider(const std::string& path, int64_t iteration);

  // The mean weighted reward of the window before `iteration`, when all of it is known.
  std::optional<double> Score(int64_t iteration) const;

  std::string BestPath() const { return dir_ + "/best.h5"; }
  int64_t best_iteration() const { return best_iteration_; }  // -1: none yet
  // "best.h5 = the checkpoint before iteration 300 (mean weighted training reward 1.2124 over
  // iterations 250-299)", or that there is none.
  std::string Describe() const;
  // What Open found worth saying (a dropped best.h5, unreadable metrics lines); empty if nothing.
  const std::string& notice() const { return notice_; }

 private:
  BestCheckpoint(std::string dir, int window, std::vector<std::pair<std::string, double>> weights)
      : dir_(std::move(dir)), window_(window), weights_(std::move(weights)) {}
  // sum_k w_k mean_k; nullopt when a weighted reward is missing from `means`.
  std::optional<double> Weighted(const std::map<std::string, double>& means) const;

  std::string dir_;
  int window_;
  std::vector<std::pair<std::string, double>> weights_;
  std::map<int64_t, double> reward_;  // iteration -> weighted training reward
  int64_t best_iteration_ = -1;
  std::optional<double> best_score_;  // nullopt with a best whose window is unknown: any score beats it
  std::string notice_;
};

}  // namespace dancegrpo::io

#endif  // DANCEGRPO_DANCEGRPO_IO_BEST_CHECKPOINT_H_
