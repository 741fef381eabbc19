// PrecomputedTextEncoder: embeddings computed upstream (T5 / CLIP features, as real
// pipelines feed them) and stored in HDF5, looked up by prompt text.
//
// HDF5 layout of a precomputed-embedding file (docs/hdf5_schema.md shows how to write one
// with h5py from any text encoder's output):
//   /prompts      [N]        variable-length UTF-8 strings, the key (include "" for CFG)
//   /tokens       [N, L, D]  float32 token embeddings, the real tokens first
//   /token_mask   [N, L]     uint8, 1 = real token (every row has at least one), or
//   /lengths      [N]        int32/int64, the number of real tokens (1..L) of each row
//   /pooled       [N, P]     float32, optional
// Exactly one of token_mask and lengths. L may be shorter than the model's text_len: a Wan
// model pads to text_len itself.
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

// The token embeddings stay in the file, which stays open: each Encode reads the rows of the
// prompts it is asked for (a Wan-sized table, N x 512 x 4096 floats, would not fit in every
// rank's memory). The masks, lengths and pooled vectors are read at Load.
class PrecomputedTextEncoder : public PromptEncoder {
 public:
  // Opens and validates the file (shapes, masks, and the first and last token rows);
  // errors name the file and the field.
  static absl::StatusOr<std::unique_ptr<PrecomputedTextEncoder>> Load(const std::string& path);
  // Fails with NotFound, naming the prompt and the file, for a prompt not in the table.
  absl::StatusOr<Conditioning> Encode(const std::vector<std::string>& prompts) override;
  int64_t size() const { return static_cast<int64_t>(rows_.size()); }
  bool Has(const std::string& prompt) const { return rows_.count(prompt) > 0; }
  int64_t token_length() const { return length_; }  // L
  int64_t token_width() const { return width_; }    // D
  int64_t pooled_width() const { return table_.pooled.defined() ? table_.pooled.size(1) : 0; }
  // The most real tokens any row has.
  int64_t max_real_tokens() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<void> file_;  // the open HDF5 file (an hpc::h5::Handle)
  int64_t length_ = 0, width_ = 0;
  std::unordered_map<std::string, int64_t> rows_;
  Conditioning table_;  // token_mask and pooled of every row; tokens are read per Encode
};

// Writes a precomputed-embedding file (atomically: a temporary file, then rename).
absl::Status WritePrecomputedTextEmbeddings(const std::string& path, const std::vector<std::string>& prompts,
                                            const Conditioning& embeddings);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_TEXT_PRECOMPUTED_TEXT_ENCODER_H_
