#include "models/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <sstream>
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

absl::StatusOr<std::vector<SafetensorsFile>> OpenSafetensorsSet(const std::string& path) {
  std::vector<SafetensorsFile> files;
  const std::string suffix = ".index.json";
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) {
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) return f.status();
    files.push_back(std::move(*f));
    return files;
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a safetensors index (a JSON object with a "
                                                   "\"weight_map\" from tensor names to shard files)"));
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::map<std::string, std::vector<std::string>> by_file;  // shard -> the names the index puts there
  for (auto it = json["weight_map"].begin(); it != json["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      return absl::InvalidArgumentError(absl::StrCat(path, ": weight_map['", it.key(), "'] is not a file name"));
    by_file[it.value().get<std::string>()].push_back(it.key());
  }
  if (by_file.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the weight_map is empty"));
  for (const auto& [shard, names] : by_file) {
    auto f = SafetensorsFile::Open(dir + shard);
    if (!f.ok())
      return absl::Status(f.status().code(), absl::StrCat(path, " lists shard ", shard, ": ", f.status().message()));
    for (const auto& n : names)
      if (!f->entries().count(n))
        return absl::InvalidArgumentError(
            absl::StrCat(path, " puts tensor '", n, "' in ", shard, ", which does not hold it (a stale index?)"));
    files.push_back(std::move(*f));
  }
  return files;
}

namespace {

// A hint for names that do not line up: a prefix to strip, or a layout we do not read.
std::string NameHint(const std::vector<std::string>& missing, const std::vector<std::string>& unexpected) {
  for (const auto& u : unexpected) {
    if (u.find("condition_embedder.") != std::string::npos || u.find("attn1.to_q") != std::string::npos ||
        u.find("scale_shift_table") != std::string::npos) {
      return " This looks like the diffusers layout (WanTransformer3DModel names); give the original Wan "
             "layout (blocks.N.self_attn.q.weight, ...), as in the Wan-AI/Wan2.1-T2V-* releases.";
    }
  }
  for (const auto& m : missing)
    for (const auto& u : unexpected)
      if (u.size() > m.size() && u.compare(u.size() - m.size(), m.size(), m) == 0)
        return absl::StrCat(" The file stores '", u, "' for the model's '", m, "': strip the prefix '",
                            u.substr(0, u.size() - m.size()), "' (train --weights_prefix=",
                            u.substr(0, u.size() - m.size()), ", or NameRule{\"", u.substr(0, u.size() - m.size()),
                            "\", \"\"}).");
  return " Names must match the model's (Wan's: patch_embedding.weight, blocks.N.self_attn.q.weight, "
         "head.head.weight, ...); a stored prefix can be stripped with --weights_prefix.";
}

std::string FirstFew(std::vector<std::string> v, size_t n = 8) {
  if (v.size() > n) {
    const size_t more = v.size() - n;
    v.resize(n);
    v.push_back(absl::StrCat("... (", more, " more)"));
  }
  return absl::StrJoin(v, ", ");
}

}  // namespace

absl::StatusOr<ImportReport> ImportSafetensors(torch::nn::Module& model, const std::string& path,
                                               const std::vector<NameRule>& rules, bool allow_unexpected) {
  auto files = OpenSafetensorsSet(path);
  if (!files.ok()) return files.status();
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : model.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) targets[b.key()] = b.value();

  // Every name and shape is checked from the headers before any tensor is read or written,
  // so a mismatch leaves the model unchanged and reads nothing.
  ImportReport report;
  struct Copy {
    const SafetensorsFile* file;
    std::string stored;
    torch::Tensor dst;
  };
  std::vector<Copy> copies;
  std::vector<std::string> shape_mismatches;
  std::map<std::string, bool> seen;
  for (const auto& file : *files) {
    for (const auto& [stored_name, entry] : file.entries()) {
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
      seen[name] = true;
      if (entry.shape != it->second.sizes().vec()) {
        shape_mismatches.push_back(absl::StrCat("'", stored_name, "' is ", ShapeString(entry.shape), ", the model's '",
                                                name, "' is ", ShapeString(it->second.sizes().vec())));
        continue;
      }
      auto type = ScalarTypeOf(entry.dtype);
      if (!type.ok())
        return absl::Status(type.status().code(),
                            absl::StrCat(file.path(), ": tensor '", stored_name, "': ", type.status().message()));
      copies.push_back({&file, stored_name, it->second});
    }
  }
  if (!shape_mismatches.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", shape_mismatches.size(), " tensor(s) have other shapes than the model: ", FirstFew(shape_mismatches, 5),
        ". The checkpoint was made for another configuration: check dim, ffn_dim, num_heads, num_layers, "
        "in_dim, out_dim, text_dim, freq_dim and patch_size in the model config against the checkpoint's "
        "config.json"));
  }
  std::vector<std::string> missing;
  for (const auto& [name, _] : targets)
    if (!seen.count(name)) missing.push_back(name);
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", missing.size(), " of the model's ", targets.size(),
                                                   " parameters are not in the file: ", FirstFew(missing), ".",
                                                   NameHint(missing, report.unexpected)));
  }
  if (!report.unexpected.empty() && !allow_unexpected) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", report.unexpected.size(),
                                                   " tensor(s) match no model parameter: ", FirstFew(report.unexpected),
                                                   " (a checkpoint of another model?).",
                                                   NameHint(missing, report.unexpected)));
  }
  // One tensor at a time, converted to the parameter's dtype and device: a bf16 file into
  // bf16 compute weights never makes an fp32 copy of the whole model.
  torch::NoGradGuard no_grad;
  for (auto& c : copies) {
    auto t = c.file->Read(c.stored);
    if (!t.ok()) return t.status();
    c.dst.copy_(t->to(c.dst.dtype()));
  }
  report.loaded = static_cast<int64_t>(copies.size());
  return report;
}

}  // namespace dancegrpo::models
