// Trajectory shards: every rank appends what it sampled each iteration to its own HDF5
// files, for analysis (h5py, h5dump, the inspect tool) and for replay (training from
// stored samples, decoupled from sampling). The schema is in docs/hdf5_schema.md.
//
// Files are written in segments: <dir>/rank-RRRRR/seg-IIIIII.h5 holds iterations from
// IIIIII until the next checkpoint. A segment is written under a hidden temporary name and
// renamed when it is closed (at each checkpoint and at the end of the job), so a visible
// segment is always complete; a killed job leaves only a temporary file, which the restart
// removes together with segments that start at or after the resumed iteration.
#ifndef DANCEGRPO_DANCEGRPO_IO_TRAJECTORY_STORE_H_
#define DANCEGRPO_DANCEGRPO_IO_TRAJECTORY_STORE_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/rollout.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/trainer_config.h"
#include "hpc/h5/h5.h"

namespace dancegrpo {

enum class StoredLatents { kAll, kTrainedSteps };

// One rank's samples of one iteration.
struct TrajectoryRecord {
  int64_t iteration = 0;
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;         // noise keys are (seed, iteration, prompt_slot, member, step)
  int micro_batch = 0;
  int64_t first_global_sample = 0;
  std::vector<double> sigmas;               // [T + 1]
  torch::Tensor latents;                    // [n, S, C, F, H, W] fp32
  torch::Tensor latent_index;               // [n, S] int64: the step of each stored latent, -1 = padding
  torch::Tensor log_probs;                  // [n, T] fp32
  torch::Tensor timesteps;                  // [n, k] int64: the trained steps of each sample
  std::vector<std::string> reward_names;    // [K]
  torch::Tensor rewards;                    // [K, n] fp64
  torch::Tensor advantages;                 // [n] fp64
  std::vector<int64_t> trained;             // indices of the samples trained (best-of-n)
  std::vector<int64_t> prompt_ids, prompt_slot, member;
  std::vector<std::string> prompt_texts;
};

// Builds the record of `traj` (this rank's rollout) with the given extras. With
// kTrainedSteps only x_t and x_{t+1} of each trained step t are kept.
TrajectoryRecord MakeTrajectoryRecord(const Trajectories& traj, StoredLatents mode, const torch::Tensor& timesteps);

// The shard record of one iteration of a run with `config`: the trainer's record, the
// trained timesteps of each sample, and the run's seed and micro-batch.
absl::StatusOr<TrajectoryRecord> ToTrajectoryRecord(const IterationRecord& record, StoredLatents mode,
                                                    const TrainerConfig& config);

// The iteration of a stored record, for Trainer::ReplayStep; latents that were not stored
// are zero, and the conditions are left for the trainer to encode.
IterationRecord ToIterationRecord(const TrajectoryRecord& record);

class TrajectoryWriter {
 public:
  TrajectoryWriter(std::string dir, int rank, StoredLatents mode) : dir_(std::move(dir)), rank_(rank), mode_(mode) {}
  ~TrajectoryWriter() = default;  // an uncommitted segment stays temporary
  StoredLatents mode() const { return mode_; }
  // Appends one iteration, opening a new segment if none is open.
  absl::Status Append(const TrajectoryRecord& record);
  // Closes and commits the open segment (no-op if none).
  absl::Status CommitSegment();
  // This rank's directory.
  std::string RankDir() const;

 private:
  std::string dir_;
  int rank_;
  StoredLatents mode_;
  hpc::h5::Handle file_;  // the open segment, if any
  std::string tmp_path_, final_path_;
};

// The trajectory writer as an observer of the trainer: appends every sampled iteration
// (not replayed ones) to this rank's shards.
class TrajectoryShards : public IterationObserver {
 public:
  TrajectoryShards(std::shared_ptr<TrajectoryWriter> writer, TrainerConfig config)
      : writer_(std::move(writer)), config_(std::move(config)) {}
  absl::Status OnIteration(const IterationRecord& record) override;

 private:
  std::shared_ptr<TrajectoryWriter> writer_;
  TrainerConfig config_;
};

// Removes, under `dir`, every temporary segment and every segment starting at or after
// `iteration` (they are re-created by the resumed run). Call on one rank.
absl::Status DiscardTrajectoriesFrom(const std::string& dir, int64_t iteration);

// Lists the segment files under `dir` (all ranks), sorted.
std::vector<std::string> ListTrajectorySegments(const std::string& dir);
// The iterations stored in one segment file.
absl::StatusOr<std::vector<int64_t>> ListStoredIterations(const std::string& path);
// Reads one iteration of a segment file. Errors name the file and the dataset.
absl::StatusOr<TrajectoryRecord> ReadTrajectoryRecord(const std::string& path, int64_t iteration);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_TRAJECTORY_STORE_H_
