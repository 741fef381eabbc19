// PrecomputedTextEncoder: embeddings computed upstream (T5 / CLIP features, as real
// pipelines feed them) and stored in HDF5, looked up by prompt text.
//
// HDF5 layout of a precomputed-embedding file (docs/ describes it for h5py users):
//   /prompts      [N]        variable-length UTF-8 strings (include "" for CFG)
//   /tokens       [N, L, D]  float32 token embeddings
//   /token_mask   [N, L]     uint8, 1 = real token (every row has at least one)
//   /pooled       [N, P]     float32, optional
#ifndef DANCEGRPO_MODELS_TEXT_PRECOMPUTED_TEXT_ENCODER_H_
#define DANCEGRPO_MODELS_TEXT_PRECOMPUTED_TEXT_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

class PrecomputedTextEncoder : public PromptEncoder {
 public:
  // Reads and validates the whole file; errors name the file and the field.
  static absl::StatusOr<std::unique_ptr<PrecomputedTextEncoder>> Load(const std::string& path);
  // Fails with NotFound, naming the prompt and the file, for a prompt not in the table.
  absl::StatusOr<Conditioning> Encode(const std::vector<std::string>& prompts) override;
  int64_t size() const { return static_cast<int64_t>(rows_.size()); }

 private:
  std::string path_;
  std::unordered_map<std::string, int64_t> rows_;
  Conditioning table_;
};

// Writes a precomputed-embedding file (atomically: a temporary file, then rename).
absl::Status WritePrecomputedTextEmbeddings(const std::string& path, const std::vector<std::string>& prompts,
                                            const Conditioning& embeddings);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_TEXT_PRECOMPUTED_TEXT_ENCODER_H_
