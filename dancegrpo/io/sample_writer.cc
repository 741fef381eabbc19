#include "dancegrpo/io/sample_writer.h"

#include <torch/torch.h>

#include "absl/strings/str_format.h"
#include "dancegrpo/io/mp4.h"
#include "hpc/atomic_file.h"

namespace dancegrpo {

absl::Status PngStripWriter::Write(const std::string& stem, const SampleSheet& sheet) const {
  if (sheet.cells.empty()) return absl::InvalidArgumentError("a sample sheet without clips");
  std::vector<torch::Tensor> clips;
  for (const auto& cell : sheet.cells) clips.push_back(cell.clip);
  return WritePng(PathFor(stem), PreviewGrid(torch::stack(clips)));
}

absl::Status GifSheetWriter::Write(const std::string& stem, const SampleSheet& sheet) const {
  if (sheet.cells.empty()) return absl::InvalidArgumentError("a sample sheet without clips");
  return WriteGif(PathFor(stem), AnimatedSheet(sheet.cells, sheet.columns, sheet.title));
}

absl::Status Mp4ClipsWriter::Write(const std::string& stem, const SampleSheet& sheet) const {
  if (sheet.cells.empty()) return absl::InvalidArgumentError("a sample sheet without clips");
  if (auto s = hpc::MakeDirectories(stem); !s.ok()) return s;
  for (size_t i = 0; i < sheet.cells.size(); ++i) {
    const auto& clip = sheet.cells[i].clip;
    // Clips of 3 channels are RGB; others (latents seen directly) show their first 3 or repeat one.
    torch::Tensor rgb = clip.size(0) >= 3 ? clip.narrow(0, 0, 3) : clip.narrow(0, 0, 1).expand({3, -1, -1, -1});
    if (auto s = WriteMp4(absl::StrFormat("%s/%02d.mp4", stem, i), rgb); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<std::shared_ptr<const SampleWriter>> DefaultSampleWriters() {
  std::vector<std::shared_ptr<const SampleWriter>> writers = {std::make_shared<PngStripWriter>(),
                                                               std::make_shared<GifSheetWriter>()};
  if (Mp4Supported()) writers.push_back(std::make_shared<Mp4ClipsWriter>());
  return writers;
}

}  // namespace dancegrpo
