// Reading, writing and importing .safetensors files, the format public checkpoints ship in:
//   [8 bytes: little-endian u64 N][N bytes: JSON header][raw tensor data]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section), plus an optional "__metadata__" of strings.
//
// Every structural property is validated on open (header length within the file, JSON
// well-formed, offsets inside the data and consistent with shape x dtype, no overlaps),
// so a truncated or corrupt file is reported, naming the file and the problem, before any
// tensor is read.
#ifndef DANCEGRPO_MODELS_SAFETENSORS_H_
#define DANCEGRPO_MODELS_SAFETENSORS_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo::models {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "BF16", "F16", ... (as stored)
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor in its stored dtype (F32, BF16 and F16 are supported).
  absl::StatusOr<torch::Tensor> Read(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (F32, BF16 or F16) atomically (temporary file, then rename).
absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Renames checkpoint names to model names: the first rule whose `from` prefix matches
// replaces it by `to` (e.g. {"model.diffusion_model.", ""}).
struct NameRule {
  std::string from;
  std::string to;
};

struct ImportReport {
  int64_t loaded = 0;
  std::vector<std::string> unexpected;  // file tensors with no model parameter
};

// The files of a checkpoint: one .safetensors file, or every shard named by a
// "*.safetensors.index.json" (its "weight_map" maps tensor names to shard files beside it),
// as Wan and diffusers publish large models. Every shard is opened and validated, and the
// index is checked against the shards' headers.
absl::StatusOr<std::vector<SafetensorsFile>> OpenSafetensorsSet(const std::string& path);

// Copies every tensor of the file (or sharded set, see OpenSafetensorsSet) into the model's parameters and buffers (converting
// dtype and device, one tensor at a time). Fails, listing the first mismatches, on shapes
// that differ from the model's, or if any model parameter is missing from the file, or if
// the file has tensors the model lacks (unless allow_unexpected); the message suggests the
// name rule (a prefix to strip) when one would line the names up. Names and shapes are
// checked from the headers before anything is read: on such a failure the model is unchanged.
absl::StatusOr<ImportReport> ImportSafetensors(torch::nn::Module& model, const std::string& path,
                                               const std::vector<NameRule>& rules = {},
                                               bool allow_unexpected = false);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_SAFETENSORS_H_
