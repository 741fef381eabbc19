// The text side of the policy:
//   - WordTokenizer and TrainableTextEncoder: a word-level tokenizer over a built-in prompt
//     vocabulary and a small transformer encoder (token + position embeddings, pre-norm
//     self-attention blocks) giving token embeddings [B, L, D], a key mask and a pooled
//     (masked-mean) vector. For the procedural worlds this project ships.
// Embeddings computed upstream and stored in HDF5 are in precomputed_text_encoder.h (kept
// apart so that this library needs neither HDF5 nor MPI).
#ifndef DANCEGRPO_MODELS_TEXT_TEXT_ENCODER_H_
#define DANCEGRPO_MODELS_TEXT_TEXT_ENCODER_H_

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

class WordTokenizer {
 public:
  static constexpr int64_t kPad = 0, kUnknown = 1, kBegin = 2;
  // `vocabulary`: the known words (lower-case); ids start at 3.
  WordTokenizer(const std::vector<std::string>& vocabulary, int64_t max_length);
  // Lower-cases, splits on anything that is not a letter or digit, prepends [BOS],
  // truncates to max_length and pads. Returns ids [B, L] and mask [B, L] (bool).
  std::pair<torch::Tensor, torch::Tensor> Encode(const std::vector<std::string>& texts) const;
  int64_t vocab_size() const { return static_cast<int64_t>(words_.size()) + 3; }
  int64_t max_length() const { return max_length_; }
  std::vector<std::string> Words(const std::string& text) const;

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t max_length_;
};

struct TextEncoderConfig {
  int64_t dim = 64;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t max_length = 16;
};

class TextTransformerImpl : public torch::nn::Module {
 public:
  TextTransformerImpl(int64_t vocab_size, const TextEncoderConfig& c);
  // ids, mask: [B, L] -> token embeddings [B, L, dim].
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask);

 private:
  struct Layer {
    torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    torch::nn::Linear qkv{nullptr}, out{nullptr}, fc1{nullptr}, fc2{nullptr};
  };
  TextEncoderConfig config_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<Layer> layers_;
  torch::nn::LayerNorm final_norm_{nullptr};
};
TORCH_MODULE(TextTransformer);

class TrainableTextEncoder : public PromptEncoder {
 public:
  TrainableTextEncoder(WordTokenizer tokenizer, const TextEncoderConfig& config);
  // tokens [B, L, dim], token_mask [B, L], pooled = masked mean [B, dim].
  absl::StatusOr<Conditioning> Encode(const std::vector<std::string>& prompts) override;
  TextTransformer& module() { return module_; }
  const WordTokenizer& tokenizer() const { return tokenizer_; }

 private:
  WordTokenizer tokenizer_;
  TextTransformer module_{nullptr};
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_TEXT_TEXT_ENCODER_H_
