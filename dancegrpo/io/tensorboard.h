// TensorBoard event files: how people watch a run on a machine without internet.
//
// A file is a sequence of TFRecord-framed records, each a serialised Event:
//   uint64 length | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of data
// (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8). The first record holds
// file_version "brain.Event:2"; then one Event per iteration with every scalar, and one per
// sample picture with a PNG. Files are append-only: a writer killed mid-record leaves a
// truncated last record, which TensorBoard skips; each run (and each resume) starts a new
// file, events.out.tfevents.<seconds>.<host>.<pid>.
#ifndef DANCEGRPO_DANCEGRPO_IO_TENSORBOARD_H_
#define DANCEGRPO_DANCEGRPO_IO_TENSORBOARD_H_

#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo {

// CRC-32C (Castagnoli), as TFRecord frames it: Boost.CRC underneath.
uint32_t Crc32c(const void* data, size_t size);
uint32_t MaskCrc(uint32_t crc);
// One framed record around `data`.
std::string FrameRecord(const std::string& data);
// Every record's data in an event file, both CRCs checked. A corrupt or truncated record is an
// error naming the file, the record's index and its byte offset.
absl::StatusOr<std::vector<std::string>> ReadRecords(const std::string& path);

class EventWriter {
 public:
  // Creates `dir` if needed and a new event file in it, and writes its file-version record.
  static absl::StatusOr<std::unique_ptr<EventWriter>> Create(const std::string& dir);
  ~EventWriter();

  // One event with a scalar per (tag, value) at `step`.
  absl::Status AddScalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);
  // One event with `rgb` (uint8 [H, W, 3]) as a PNG image at `step`.
  absl::Status AddImage(int64_t step, const std::string& tag, const torch::Tensor& rgb);
  // Pushes what was written to the file system (TensorBoard reads growing files).
  absl::Status Flush();

  const std::string& path() const { return path_; }

 private:
  EventWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status Write(const std::string& event);

  std::string path_;
  std::FILE* file_;
};

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_TENSORBOARD_H_
