// Checkpoints: one HDF5 file per checkpoint, written by all ranks together with parallel
// HDF5, restorable on any number of ranks. The schema is in docs/hdf5_schema.md.
//
// What is saved: the parameters, the AdamW moments and the EMA, each as one flat fp32
// vector stored by global offset (each rank writes the slice it owns, so the file does not
// depend on the rank count), with the parameter names, shapes and offsets; the iteration
// (which also fixes the data position and every random key, since all randomness is keyed
// by (seed, iteration, ...)); the seed; the full config; library versions. Every dataset
// is chunked with HDF5's Fletcher-32 checksum, verified on every read.
//
// Commit protocol: all ranks write <dir>/.ckpt-IIIIII.h5.partial; after every rank has
// closed it, rank 0 renames it to <dir>/ckpt-IIIIII.h5 (fsync, rename, fsync dir) and
// deletes the oldest checkpoints beyond `keep_last`. A reader never sees a partial file.
#ifndef DANCEGRPO_DANCEGRPO_IO_CHECKPOINT_H_
#define DANCEGRPO_DANCEGRPO_IO_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/trainer.h"
#include "models/lora.h"
#include "torch/nn/module.h"

namespace dancegrpo {

// "<dir>/ckpt-IIIIII.h5" for the state before iteration IIIIII.
std::string CheckpointPath(const std::string& dir, int64_t iteration);

// Collective over the trainer's world. Saves the state before iteration trainer.iteration().
absl::StatusOr<std::string> SaveCheckpoint(Trainer& trainer, const std::string& dir, int keep_last);

// The committed checkpoint with the highest iteration in `dir`; NotFound if none.
absl::StatusOr<std::string> LatestCheckpoint(const std::string& dir);

struct ResumeReport {
  int64_t iteration = 0;
  int saved_world_size = 0;
  std::vector<std::string> config_changes;  // "lr: 1e-05 -> 2e-05", warned about
};

// Collective. Restores parameters, optimizer state (resharded to this world), EMA and the
// iteration. Refuses, naming the file and the problem, a file that is not a committed
// DanceGRPO checkpoint, one that is truncated or corrupt, or one whose parameters do not
// match the model (a different model shape), or one of part of a model (LoRA, --trainable)
// written over other base weights (trainer.config().base_checksum); config changes that keep the model shape
// (e.g. the learning rate) are reported in the ResumeReport and logged as warnings.
absl::StatusOr<ResumeReport> LoadCheckpoint(Trainer& trainer, const std::string& path);

// Loads only the parameters (or, with use_ema, the EMA weights when the checkpoint has
// them) into `model`, checking names and shapes. For evaluation and sampling. A checkpoint
// of a run that trained some parameters (--trainable) holds only those; they are loaded over
// the model's current (base) weights.
absl::Status LoadModelWeights(const std::string& path, torch::nn::Module& model, bool use_ema = false);

// What a checkpoint says of its base and adapters: the LoRA config (rank 0 = full or
// --trainable fine-tuning) and the base weights' origin and checksum (empty when not recorded).
struct LoraCheckpointInfo {
  models::LoraConfig lora;
  std::string base_weights;
  std::string base_checksum;
};
absl::StatusOr<LoraCheckpointInfo> ReadCheckpointLora(const std::string& path);

// The iteration a committed checkpoint was saved before (its file name aside: best.h5 is one).
absl::StatusOr<int64_t> ReadCheckpointIteration(const std::string& path);

// The training config the checkpoint was written with (DescribeConfig's lines; evaluate
// samples with its sampler, ApplyDescribedSampler).
absl::StatusOr<std::string> ReadCheckpointConfig(const std::string& path);

// The stored (trained) parameters by name, in fp32 on the CPU: the model, or with use_ema the
// EMA weights when the checkpoint has them.
absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadCheckpointParameters(const std::string& path,
                                                                                          bool use_ema = false);

// Fails, naming both checksums and the fix, when the checkpoint recorded a base checksum and
// `checksum` (models::BaseChecksum of the model it is about to be loaded over) differs.
absl::Status CheckBaseChecksum(const LoraCheckpointInfo& info, const std::string& checksum);

struct CheckpointSummary {
  int64_t iteration = 0;
  int64_t world_size = 0;
  int64_t parameters = 0;
  int64_t tensors = 0;
  bool has_ema = false;
  std::string config;
  std::string versions;
};
// Opens and fully verifies a checkpoint (reads every dataset, so every checksum is checked).
absl::StatusOr<CheckpointSummary> VerifyCheckpoint(const std::string& path);

// Compares the model, optimizer and EMA vectors of two checkpoints: max |a - b| / max |b|
// over all of them (0 = bit-identical).
absl::StatusOr<double> CompareCheckpoints(const std::string& a, const std::string& b);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_CHECKPOINT_H_
