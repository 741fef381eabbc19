#include "dancegrpo/io/sample_writer.h"

#include <torch/torch.h>

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

std::vector<std::shared_ptr<const SampleWriter>> DefaultSampleWriters() {
  return {std::make_shared<PngStripWriter>(), std::make_shared<GifSheetWriter>()};
}

}  // namespace dancegrpo
