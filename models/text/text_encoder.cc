#include "models/text/text_encoder.h"

#include <torch/torch.h>

#include <cctype>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "hpc/atomic_file.h"
#include "hpc/h5/h5.h"
#include "hpc/status_macros.h"

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
  auto x = token_embedding_(ids) + position_embedding_(torch::arange(len, torch::kLong)).unsqueeze(0);
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
  Conditioning c;
  c.tokens = module_->forward(ids, mask);
  c.token_mask = mask;
  auto m = mask.to(c.tokens.dtype()).unsqueeze(-1);
  c.pooled = (c.tokens * m).sum(1) / m.sum(1).clamp_min(1.0);
  return c;
}

// ----------------------------------------------------------------------------- precomputed

absl::StatusOr<std::unique_ptr<PrecomputedTextEncoder>> PrecomputedTextEncoder::Load(const std::string& path) {
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("text embeddings ", path, ": ", s.message()));
  };
  auto file = hpc::h5::OpenFile(path);
  if (!file.ok()) return file.status();
  const hid_t f = file->id();
  auto prompts = hpc::h5::ReadStrings(f, "prompts");
  if (!prompts.ok()) return fail(prompts.status());
  std::vector<hsize_t> tdims, mdims;
  auto tokens = hpc::h5::ReadDataset<float>(f, "tokens", &tdims);
  if (!tokens.ok()) return fail(tokens.status());
  auto mask = hpc::h5::ReadDataset<uint8_t>(f, "token_mask", &mdims);
  if (!mask.ok()) return fail(mask.status());
  const auto n = static_cast<hsize_t>(prompts->size());
  if (tdims.size() != 3 || tdims[0] != n)
    return fail(absl::InvalidArgumentError(absl::StrCat("'tokens' must be [", n, ", L, D] for ", n, " prompts")));
  if (mdims != std::vector<hsize_t>{tdims[0], tdims[1]})
    return fail(absl::InvalidArgumentError("'token_mask' must be [N, L], matching 'tokens'"));
  auto out = std::unique_ptr<PrecomputedTextEncoder>(new PrecomputedTextEncoder());
  out->path_ = path;
  const auto N = static_cast<int64_t>(tdims[0]), L = static_cast<int64_t>(tdims[1]),
             D = static_cast<int64_t>(tdims[2]);
  out->table_.tokens = torch::from_blob(tokens->data(), {N, L, D}, torch::kFloat32).clone();
  out->table_.token_mask = torch::from_blob(mask->data(), {N, L}, torch::kUInt8).to(torch::kBool);
  if (N > 0 && (out->table_.token_mask.sum(1) == 0).any().item<bool>())
    return fail(absl::InvalidArgumentError("a row of 'token_mask' has no real token; every prompt needs one"));
  if (hpc::h5::Exists(f, "pooled")) {
    std::vector<hsize_t> pdims;
    auto pooled = hpc::h5::ReadDataset<float>(f, "pooled", &pdims);
    if (!pooled.ok()) return fail(pooled.status());
    if (pdims.size() != 2 || pdims[0] != n) return fail(absl::InvalidArgumentError("'pooled' must be [N, P]"));
    out->table_.pooled =
        torch::from_blob(pooled->data(), {N, static_cast<int64_t>(pdims[1])}, torch::kFloat32).clone();
  }
  for (int64_t i = 0; i < N; ++i) {
    if (!out->rows_.emplace((*prompts)[i], i).second)
      return fail(absl::InvalidArgumentError(absl::StrCat("prompt '", (*prompts)[i], "' appears twice")));
  }
  return out;
}

absl::StatusOr<Conditioning> PrecomputedTextEncoder::Encode(const std::vector<std::string>& prompts) {
  std::vector<int64_t> rows;
  for (const auto& p : prompts) {
    auto it = rows_.find(p);
    if (it == rows_.end()) {
      return absl::NotFoundError(absl::StrCat("prompt '", p, "' has no embedding in ", path_, " (", rows_.size(),
                                              " prompts); compute it upstream and add it to the file"));
    }
    rows.push_back(it->second);
  }
  return table_.Rows(torch::tensor(rows, torch::kLong));
}

absl::Status WritePrecomputedTextEmbeddings(const std::string& path, const std::vector<std::string>& prompts,
                                            const Conditioning& e) {
  if (!e.tokens.defined() || e.tokens.dim() != 3 || e.tokens.size(0) != static_cast<int64_t>(prompts.size()))
    return absl::InvalidArgumentError("tokens must be [N, L, D] with one row per prompt");
  const std::string tmp = hpc::TemporaryPathFor(path);
  {
    DGRPO_ASSIGN_OR_RETURN(auto file, hpc::h5::CreateFile(tmp));
    DGRPO_RETURN_IF_ERROR(hpc::h5::WriteStrings(file.id(), "prompts", prompts));
    auto tokens = e.tokens.to(torch::kFloat32).contiguous();
    std::vector<hsize_t> dims(tokens.sizes().begin(), tokens.sizes().end());
    DGRPO_RETURN_IF_ERROR(hpc::h5::WriteDataset<float>(file.id(), "tokens", dims, tokens.data_ptr<float>(), 4));
    auto mask = (e.token_mask.defined() ? e.token_mask : torch::ones({tokens.size(0), tokens.size(1)}))
                    .to(torch::kUInt8)
                    .contiguous();
    DGRPO_RETURN_IF_ERROR(hpc::h5::WriteDataset<uint8_t>(file.id(), "token_mask", {dims[0], dims[1]},
                                                         mask.data_ptr<uint8_t>()));
    if (e.pooled.defined()) {
      auto pooled = e.pooled.to(torch::kFloat32).contiguous();
      DGRPO_RETURN_IF_ERROR(hpc::h5::WriteDataset<float>(
          file.id(), "pooled", {static_cast<hsize_t>(pooled.size(0)), static_cast<hsize_t>(pooled.size(1))},
          pooled.data_ptr<float>()));
    }
  }
  return hpc::CommitFile(tmp, path);
}

}  // namespace dancegrpo::models
