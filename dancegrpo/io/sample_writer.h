// Sample pictures of a run, one interface per format: a sheet of labelled clips becomes a
// PNG strip (rows: clips, columns: frames), a looping GIF of the labelled clips in a grid, or
// a folder of H.264 MP4 files, one per clip at its own size. The run report and evaluate write
// every format through it.
#ifndef DANCEGRPO_DANCEGRPO_IO_SAMPLE_WRITER_H_
#define DANCEGRPO_DANCEGRPO_IO_SAMPLE_WRITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dancegrpo/io/images.h"

namespace dancegrpo {

// Clips to show, each with its label lines, in a grid of `columns` under a title.
struct SampleSheet {
  std::vector<LabelledClip> cells;
  int columns = 4;
  std::string title;
};

class SampleWriter {
 public:
  virtual ~SampleWriter() = default;
  virtual std::string extension() const = 0;  // "png", "gif", "mp4"
  // Writes `sheet` to PathFor(stem) (atomically, file by file).
  virtual absl::Status Write(const std::string& stem, const SampleSheet& sheet) const = 0;
  virtual std::string PathFor(const std::string& stem) const { return stem + "." + extension(); }
};

// The clips as rows of frames (PreviewGrid), without labels.
class PngStripWriter : public SampleWriter {
 public:
  std::string extension() const override { return "png"; }
  absl::Status Write(const std::string& stem, const SampleSheet& sheet) const override;
};

// The labelled clips animated in a grid (AnimatedSheet), looping.
class GifSheetWriter : public SampleWriter {
 public:
  std::string extension() const override { return "gif"; }
  absl::Status Write(const std::string& stem, const SampleSheet& sheet) const override;
};

// Each clip as H.264 MP4 (dancegrpo/io/mp4.h) in the folder `stem`/: 00.mp4, 01.mp4, ... in
// the sheet's order, at the clip's own size (no labels, no enlarging).
class Mp4ClipsWriter : public SampleWriter {
 public:
  std::string extension() const override { return "mp4"; }
  absl::Status Write(const std::string& stem, const SampleSheet& sheet) const override;
  std::string PathFor(const std::string& stem) const override { return stem + "/"; }
};

// The formats a run writes its samples in: PNG, GIF and MP4.
std::vector<std::shared_ptr<const SampleWriter>> DefaultSampleWriters();

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_SAMPLE_WRITER_H_
