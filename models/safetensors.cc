#include "models/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpc/atomic_file.h"

namespace dancegrpo::models {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own limit is 100 MB

absl::StatusOr<torch::ScalarType> ScalarTypeOf(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F16") return torch::kFloat16;
  return absl::UnimplementedError(absl::StrCat("dtype ", dtype, " is not supported (use F32, BF16 or F16)"));
}

absl::StatusOr<std::string> DtypeName(torch::ScalarType t) {
  if (t == torch::kFloat32) return std::string("F32");
  if (t == torch::kBFloat16) return std::string("BF16");
  if (t == torch::kFloat16) return std::string("F16");
  return absl::UnimplementedError(absl::StrCat("cannot store ", c10::toString(t), " (use float32, bfloat16, float16)"));
}

uint64_t ElementSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

std::string ShapeString(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  };
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  if (size < 8) return bad(absl::StrCat("only ", size, " bytes; a safetensors file starts with an 8-byte header length"));
  in.seekg(0);
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeader || n > size - 8)
    return bad(absl::StrCat("header length ", n, " exceeds the file (", size, " bytes): truncated or not safetensors"));
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  auto json = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return bad("the header is not a JSON object");

  SafetensorsFile f;
  f.path_ = path;
  f.data_start_ = 8 + n;
  const uint64_t data_size = size - f.data_start_;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return bad("__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) return bad(absl::StrCat("metadata '", m.key(), "' is not a string"));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const auto& v = it.value();
    const std::string where = absl::StrCat("tensor '", it.key(), "': ");
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      return bad(where + "needs string dtype, array shape and two data_offsets");
    SafetensorsEntry e;
    e.dtype = v["dtype"].get<std::string>();
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) return bad(where + "shape holds a non-integer or negative size");
      e.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
    }
    if (!v["data_offsets"][0].is_number_unsigned() || !v["data_offsets"][1].is_number_unsigned())
      return bad(where + "data_offsets must be non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      return bad(absl::StrCat(where, "data_offsets [", e.begin, ", ", e.end, "] fall outside the ", data_size,
                              "-byte data section (truncated file?)"));
    const uint64_t esize = ElementSize(e.dtype);
    if (esize == 0) return bad(where + "unknown dtype " + e.dtype);
    if (e.end - e.begin != numel * esize)
      return bad(absl::StrCat(where, "holds ", e.end - e.begin, " bytes but shape ", ShapeString(e.shape), " of ",
                              e.dtype, " needs ", numel * esize));
    spans.emplace_back(e.begin, e.end);
    f.entries_[it.key()] = e;
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return bad("two tensors' data ranges overlap");
  return f;
}

absl::StatusOr<torch::Tensor> SafetensorsFile::Read(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  const auto& e = it->second;
  auto type = ScalarTypeOf(e.dtype);
  if (!type.ok()) return absl::Status(type.status().code(), absl::StrCat(path_, ": tensor '", name, "': ", type.status().message()));
  auto t = torch::empty(e.shape, torch::TensorOptions().dtype(*type));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
  if (!in) return absl::DataLossError(absl::StrCat(path_, ": short read of tensor '", name, "'"));
  return t;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<torch::Tensor> data;
  for (const auto& [name, tensor] : tensors) {
    auto dtype = DtypeName(tensor.scalar_type());
    if (!dtype.ok()) return absl::Status(dtype.status().code(), absl::StrCat("tensor '", name, "': ", dtype.status().message()));
    auto t = tensor.detach().contiguous().cpu();
    const uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", *dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section, as the reference writer does
  const std::string tmp = hpc::TemporaryPathFor(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    uint64_t n = h.size();
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len_bytes), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    if (!out) return absl::InternalError(absl::StrCat("write failed: ", tmp));
  }
  return hpc::CommitFile(tmp, path);
}

absl::StatusOr<ImportReport> ImportSafetensors(torch::nn::Module& model, const std::string& path,
                                               const std::vector<NameRule>& rules, bool allow_unexpected) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : model.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) targets[b.key()] = b.value();

  ImportReport report;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // validated before any write
  std::map<std::string, bool> seen;
  for (const auto& [stored_name, entry] : file->entries()) {
    std::string name = stored_name;
    for (const auto& r : rules) {
      if (name.rfind(r.from, 0) == 0) {
        name = r.to + name.substr(r.from.size());
        break;
      }
    }
    auto it = targets.find(name);
    if (it == targets.end()) {
      report.unexpected.push_back(stored_name);
      continue;
    }
    if (entry.shape != it->second.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", stored_name, "' has shape ",
                                                     ShapeString(entry.shape), " but model parameter '", name,
                                                     "' has ", ShapeString(it->second.sizes().vec())));
    }
    auto t = file->Read(stored_name);
    if (!t.ok()) return t.status();
    copies.emplace_back(it->second, *t);
    seen[name] = true;
  }
  std::vector<std::string> missing;
  for (const auto& [name, _] : targets)
    if (!seen.count(name)) missing.push_back(name);
  if (!missing.empty()) {
    if (missing.size() > 10) missing.resize(10), missing.push_back("...");
    return absl::InvalidArgumentError(absl::StrCat(path, ": the model's parameters ", absl::StrJoin(missing, ", "),
                                                   " are not in the file (add a NameRule if they are stored under "
                                                   "another prefix)"));
  }
  if (!report.unexpected.empty() && !allow_unexpected) {
    auto shown = report.unexpected;
    if (shown.size() > 10) shown.resize(10), shown.push_back("...");
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensors ", absl::StrJoin(shown, ", "),
                                                   " match no model parameter (wrong model, or a missing NameRule)"));
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.to(dst.dtype()));
  report.loaded = static_cast<int64_t>(copies.size());
  return report;
}

}  // namespace dancegrpo::models
