#include "models/text/text_encoder.h"

#include <torch/torch.h>

#include <cctype>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dancegrpo::models {

// ----------------------------------------------------------------------------- tokenizer

WordTokenizer::WordTokenizer(const std::vector<std::string>& vocabulary, int64_t max_length)
    : max_length_(max_length) {
  for (const auto& w : vocabulary) {
    if (ids_.emplace(w, static_cast<int64_t>(words_.size()) + 3).second) words_.push_back(w);
  }
}

std::vector<std::string> WordTokenizer::Words(const std::string& text) const {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : text) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::pair<torch::Tensor, torch::Tensor> WordTokenizer::Encode(const std::vector<std::string>& texts) const {
  const int64_t b = static_cast<int64_t>(texts.size());
  auto ids = torch::full({b, max_length_}, kPad, torch::kLong);
  auto mask = torch::zeros({b, max_length_}, torch::kBool);
  auto id_acc = ids.accessor<int64_t, 2>();
  auto mask_acc = mask.accessor<bool, 2>();
  for (int64_t i = 0; i < b; ++i) {
    std::vector<int64_t> row = {kBegin};
    for (const auto& w : Words(texts[i])) {
      auto it = ids_.find(w);
      row.push_back(it == ids_.end() ? kUnknown : it->second);
    }
    for (int64_t j = 0; j < std::min<int64_t>(max_length_, row.size()); ++j) {
      id_acc[i][j] = row[j];
      mask_acc[i][j] = true;
    }
  }
  return {ids, mask};
}

// ----------------------------------------------------------------------------- encoder

TextTransformerImpl::TextTransformerImpl(int64_t vocab_size, const TextEncoderConfig& c) : config_(c) {
  TORCH_CHECK(c.dim % c.heads == 0, "text encoder dim ", c.dim, " is not divisible by heads ", c.heads);
  token_embedding_ = register_module("token_embedding", torch::nn::Embedding(vocab_size, c.dim));
  position_embedding_ = register_module("position_embedding", torch::nn::Embedding(c.max_length, c.dim));
  for (int64_t i = 0; i < c.layers; ++i) {
    Layer l;
    const std::string p = "layer" + std::to_string(i) + "_";
    l.norm1 = register_module(p + "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
    l.norm2 = register_module(p + "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
    l.qkv = register_module(p + "qkv", torch::nn::Linear(c.dim, 3 * c.dim));
    l.out = register_module(p + "out", torch::nn::Linear(c.dim, c.dim));
    l.fc1 = register_module(p + "fc1", torch::nn::Linear(c.dim, 4 * c.dim));
    l.fc2 = register_module(p + "fc2", torch::nn::Linear(4 * c.dim, c.dim));
    layers_.push_back(l);
  }
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
}

torch::Tensor TextTransformerImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
  const int64_t b = ids.size(0), len = ids.size(1), h = config_.heads, d = config_.dim / h;
  auto x = token_embedding_(ids) + position_embedding_(torch::arange(len, ids.options().dtype(torch::kLong))).unsqueeze(0);
  auto key_mask = mask.to(torch::kBool).logical_not().view({b, 1, 1, len});
  for (auto& l : layers_) {
    auto qkv = l.qkv(l.norm1(x)).view({b, len, 3, h, d}).permute({2, 0, 3, 1, 4});
    auto scores = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(d));
    scores = scores.masked_fill(key_mask, -1e9);
    auto attn = torch::matmul(torch::softmax(scores, -1), qkv[2]).transpose(1, 2).reshape({b, len, config_.dim});
    x = x + l.out(attn);
    x = x + l.fc2(torch::gelu(l.fc1(l.norm2(x))));
  }
  return final_norm_(x);
}

TrainableTextEncoder::TrainableTextEncoder(WordTokenizer tokenizer, const TextEncoderConfig& config)
    : tokenizer_(std::move(tokenizer)) {
  TextEncoderConfig c = config;
  c.max_length = tokenizer_.max_length();
  module_ = TextTransformer(tokenizer_.vocab_size(), c);
}

absl::StatusOr<Conditioning> TrainableTextEncoder::Encode(const std::vector<std::string>& prompts) {
  auto [ids, mask] = tokenizer_.Encode(prompts);
  // The tokenizer works on the CPU; the ids follow the encoder's weights (no copy on the CPU).
  const auto device = module_->parameters().front().device();
  ids = ids.to(device);
  mask = mask.to(device);
  Conditioning c;
  c.tokens = module_->forward(ids, mask);
  c.token_mask = mask;
  auto m = mask.to(c.tokens.dtype()).unsqueeze(-1);
  c.pooled = (c.tokens * m).sum(1) / m.sum(1).clamp_min(1.0);
  return c;
}

}  // namespace dancegrpo::models
