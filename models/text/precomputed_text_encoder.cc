#include "models/text/precomputed_text_encoder.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "hpc/atomic_file.h"
#include "hpc/h5/h5.h"
#include "hpc/status_macros.h"

namespace dancegrpo::models {

absl::StatusOr<std::unique_ptr<PrecomputedTextEncoder>> PrecomputedTextEncoder::Load(const std::string& path) {
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("text embeddings ", path, ": ", s.message()));
  };
  auto file = hpc::h5::OpenFile(path);
  if (!file.ok()) return file.status();
  auto handle = std::make_shared<hpc::h5::Handle>(std::move(*file));
  const hid_t f = handle->id();
  auto prompts = hpc::h5::ReadStrings(f, "prompts");
  if (!prompts.ok()) return fail(prompts.status());
  std::vector<hsize_t> mdims;
  auto tdims_or = hpc::h5::DatasetShape(f, "tokens");
  if (!tdims_or.ok()) return fail(tdims_or.status());
  const auto tdims = *tdims_or;
  const auto n = static_cast<hsize_t>(prompts->size());
  if (tdims.size() != 3 || tdims[0] != n)
    return fail(absl::InvalidArgumentError(absl::StrCat("'tokens' must be [", n, ", L, D] for ", n, " prompts")));
  auto out = std::unique_ptr<PrecomputedTextEncoder>(new PrecomputedTextEncoder());
  out->path_ = path;
  const auto N = static_cast<int64_t>(tdims[0]), L = static_cast<int64_t>(tdims[1]),
             D = static_cast<int64_t>(tdims[2]);
  out->file_ = handle;
  out->length_ = L;
  out->width_ = D;
  if (N > 0) {  // a truncated file fails here rather than mid-training
    auto probe = hpc::h5::ReadFloatRows(f, "tokens", {0, N - 1});
    if (!probe.ok()) return fail(probe.status());
  }
  const bool has_mask = hpc::h5::Exists(f, "token_mask"), has_lengths = hpc::h5::Exists(f, "lengths");
  if (has_mask == has_lengths)
    return fail(absl::InvalidArgumentError("give exactly one of 'token_mask' [N, L] and 'lengths' [N]"));
  if (has_mask) {
    auto mask = hpc::h5::ReadDataset<uint8_t>(f, "token_mask", &mdims);
    if (!mask.ok()) return fail(mask.status());
    if (mdims != std::vector<hsize_t>{tdims[0], tdims[1]})
      return fail(absl::InvalidArgumentError("'token_mask' must be [N, L], matching 'tokens'"));
    out->table_.token_mask = torch::from_blob(mask->data(), {N, L}, torch::kUInt8).to(torch::kBool);
  } else {
    auto lengths = hpc::h5::ReadDataset<int64_t>(f, "lengths", &mdims);
    if (!lengths.ok()) return fail(lengths.status());
    if (mdims != std::vector<hsize_t>{tdims[0]})
      return fail(absl::InvalidArgumentError(absl::StrCat("'lengths' must be [", n, "], one per prompt")));
    for (int64_t i = 0; i < N; ++i)
      if ((*lengths)[i] < 1 || (*lengths)[i] > L)
        return fail(absl::InvalidArgumentError(absl::StrCat("lengths[", i, "] = ", (*lengths)[i], " (prompt '",
                                                            (*prompts)[i], "') is outside 1..", L)));
    auto len = torch::from_blob(lengths->data(), {N, 1}, torch::kInt64);
    out->table_.token_mask = torch::arange(L, torch::kInt64).unsqueeze(0) < len;
  }
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

int64_t PrecomputedTextEncoder::max_real_tokens() const {
  return table_.token_mask.numel() ? table_.token_mask.sum(1).max().item<int64_t>() : 0;
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
  auto out = table_.Rows(torch::tensor(rows, torch::kLong));
  auto tokens = hpc::h5::ReadFloatRows(static_cast<hpc::h5::Handle*>(file_.get())->id(), "tokens", rows);
  if (!tokens.ok())
    return absl::Status(tokens.status().code(), absl::StrCat("text embeddings ", path_, ": ", tokens.status().message()));
  out.tokens = torch::from_blob(tokens->data(), {static_cast<int64_t>(rows.size()), length_, width_}, torch::kFloat32)
                   .clone();
  return out;
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
