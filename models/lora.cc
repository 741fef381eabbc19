#include "models/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "hpc/crc32c.h"
#include "models/lora_keys.h"
#include "models/safetensors.h"

namespace dancegrpo::models {
namespace {

namespace F = torch::nn::functional;

bool TargetMatches(const std::string& path, const std::string& target) {
  return path == target || absl::EndsWith(path, absl::StrCat(".", target));
}

// "blocks.12.self_attn.q" -> "blocks.*.self_attn.q": one line per kind of layer.
std::string Pattern(const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (auto& p : parts)
    if (!p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return absl::ascii_isdigit(c); }) &&
        &p != &parts.back())
      p = "*";
  return absl::StrJoin(parts, ".");
}

std::vector<std::pair<std::string, LoraLinearImpl*>> LinearLayers(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, LoraLinearImpl*>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* layer = dynamic_cast<LoraLinearImpl*>(item.value().get())) out.emplace_back(item.key(), layer);
  }
  return out;
}

// x W^T + b. libtorch 1.13 runs a linear on a 3-D input as a GEMM and a separate pass that adds
// the bias (and a sum for its gradient); a contiguous input folds to 2-D rows, so the bias goes
// into the GEMM (addmm), as libtorch 2.x does itself.
torch::Tensor Affine(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!b.defined() || x.dim() < 3 || !x.is_contiguous()) return F::linear(x, w, b);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return torch::addmm(b, x.view({-1, x.size(-1)}), w.t()).view(sizes);
}

}  // namespace

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  auto y = Affine(x, weight, bias);
  if (!has_adapter() || !lora_enabled) return y;
  return torch::add(y, F::linear(F::linear(x, lora_A->weight), lora_B->weight), lora_scale);
}

absl::StatusOr<std::vector<bool>> SelectLoraLayers(const std::vector<LinearLayerShape>& layers, const LoraConfig& c) {
  if (c.rank < 1)
    return absl::InvalidArgumentError(absl::StrCat("LoRA rank ", c.rank, ": it must be >= 1 (e.g. --lora_rank=32, ",
                                                   "Flow-GRPO's choice for Wan2.1)"));
  if (!std::isfinite(c.alpha) || !(c.alpha > 0))
    return absl::InvalidArgumentError(absl::StrCat("LoRA alpha ", c.alpha, ": it must be finite and > 0 (the scale is ",
                                                   "alpha / rank; e.g. --lora_alpha=64 with --lora_rank=32)"));
  if (c.dropout != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "--lora_dropout=", c.dropout, " is not supported: dropout would make the policy that is updated differ from "
        "the one that sampled, so the on-policy ratio would not be 1; use --lora_dropout=0"));
  std::vector<std::string> targets;
  for (absl::string_view t : absl::StrSplit(c.targets, ',', absl::SkipWhitespace()))
    targets.emplace_back(absl::StripAsciiWhitespace(t));
  if (targets.empty()) return absl::InvalidArgumentError("--lora_targets is empty; name at least one linear layer");
  std::vector<bool> chosen(layers.size(), false);
  for (const auto& target : targets) {
    bool any = false;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (TargetMatches(layers[i].path, target)) chosen[i] = any = true;
    }
    if (!any) {
      std::set<std::string> kinds;
      for (const auto& layer : layers) kinds.insert(Pattern(layer.path));
      std::vector<std::string> sorted(kinds.begin(), kinds.end());
      return absl::InvalidArgumentError(absl::StrCat(
          "--lora_targets: '", target, "' matches no linear layer. A target matches a layer whose name equals it or ends "
          "with '.' + it; this model's linear layers are (* = any block): ",
          absl::StrJoin(sorted, ", ")));
    }
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    if (chosen[i] && c.rank > std::min(l.in, l.out))
      return absl::InvalidArgumentError(absl::StrCat("LoRA rank ", c.rank, " is above the width of '", l.path, "' (",
                                                     l.in, " in, ", l.out, " out): a rank above min(in, out) = ",
                                                     std::min(l.in, l.out), " adds nothing; use a rank <= ",
                                                     std::min(l.in, l.out)));
  }
  return chosen;
}

absl::StatusOr<std::vector<std::string>> AttachLora(torch::nn::Module& model, const LoraConfig& c, uint64_t seed) {
  const auto layers = LinearLayers(model);
  std::vector<LinearLayerShape> shapes;
  for (const auto& [path, layer] : layers) {
    if (layer->has_adapter())
      return absl::FailedPreconditionError(absl::StrCat("'", path, "' already has a LoRA adapter"));
    shapes.push_back({path, layer->weight.size(1), layer->weight.size(0)});
  }
  auto selected = SelectLoraLayers(shapes, c);
  if (!selected.ok()) return selected.status();
  const std::vector<bool>& chosen = *selected;
  std::vector<std::string> adapted;
  for (size_t i = 0; i < layers.size(); ++i)
    if (chosen[i]) adapted.push_back(layers[i].first);
  auto generator = at::detail::createCPUGenerator(seed ^ 0x4c6f5241ULL);  // "LoRA"
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!chosen[i]) continue;
    auto* layer = layers[i].second;
    const int64_t in = layer->weight.size(1), out = layer->weight.size(0);
    auto a = torch::nn::Linear(torch::nn::LinearOptions(in, c.rank).bias(false));
    auto b = torch::nn::Linear(torch::nn::LinearOptions(c.rank, out).bias(false));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));  // kaiming-uniform with a = sqrt(5)
    a->weight.copy_(torch::rand({c.rank, in}, generator, torch::kFloat64).mul(2 * bound).sub(bound));
    b->weight.zero_();
    const auto options = torch::TensorOptions().device(layer->weight.device());
    a->to(options.device());
    b->to(options.device());
    layer->lora_A = layer->register_module("lora_A", a);
    layer->lora_B = layer->register_module("lora_B", b);
    layer->lora_scale = c.alpha / static_cast<double>(c.rank);
    layer->lora_enabled = true;
  }
  return adapted;
}

bool IsLoraParameter(const std::string& name) {
  return absl::EndsWith(name, ".lora_A.weight") || absl::EndsWith(name, ".lora_B.weight");
}

bool HasLora(const torch::nn::Module& model) { return !AdaptedLayers(model).empty(); }

std::vector<LoraLinearImpl*> AdaptedLayers(const torch::nn::Module& model) {
  std::vector<LoraLinearImpl*> out;
  for (const auto& [path, layer] : LinearLayers(model))
    if (layer->has_adapter()) out.push_back(layer);
  return out;
}

LoraDisabled::LoraDisabled(const std::vector<LoraLinearImpl*>& layers) {
  for (auto* layer : layers) {
    saved_.emplace_back(layer, layer->lora_enabled);
    layer->lora_enabled = false;
  }
}

LoraDisabled::~LoraDisabled() {
  for (auto& [layer, enabled] : saved_) layer->lora_enabled = enabled;
}

torch::Tensor MergedWeight(const torch::Tensor& weight, const torch::Tensor& lora_a, const torch::Tensor& lora_b,
                           double scale) {
  torch::NoGradGuard no_grad;
  auto w = weight.to(torch::kCPU, torch::kFloat32);
  auto delta = torch::mm(lora_b.to(torch::kCPU, torch::kFloat32), lora_a.to(torch::kCPU, torch::kFloat32));
  return w.add(delta, scale).to(weight.scalar_type());
}

std::vector<std::pair<std::string, torch::Tensor>> MergedParameters(const torch::nn::Module& model) {
  std::map<std::string, LoraLinearImpl*> adapted;
  for (const auto& [path, layer] : LinearLayers(model))
    if (layer->has_adapter()) adapted[absl::StrCat(path, ".weight")] = layer;
  std::vector<std::pair<std::string, torch::Tensor>> out;
  torch::NoGradGuard no_grad;
  for (const auto& p : model.named_parameters()) {
    if (IsLoraParameter(p.key())) continue;
    auto it = adapted.find(p.key());
    if (it == adapted.end()) {
      out.emplace_back(p.key(), p.value().detach().to(torch::kCPU).clone());
    } else {
      const auto* layer = it->second;
      out.emplace_back(p.key(),
                       MergedWeight(p.value(), layer->lora_A->weight, layer->lora_B->weight, layer->lora_scale));
    }
  }
  return out;
}

namespace {

// Every layer has both matrices, of rank >= 1, and they chain: A [r, in], B [out, r].
absl::Status CheckLayers(const std::map<std::string, LoraLayerWeights>& layers) {
  for (const auto& [layer, w] : layers) {
    if (!w.a.defined() || !w.b.defined())
      return absl::InvalidArgumentError(absl::StrCat("layer '", layer, "' has lora_", w.a.defined() ? "A" : "B",
                                                     " but no lora_", w.a.defined() ? "B" : "A"));
    if (w.a.dim() != 2 || w.b.dim() != 2 || w.a.size(0) < 1 || w.a.size(0) != w.b.size(1))
      return absl::InvalidArgumentError(absl::StrCat("layer '", layer, "': lora_A ", c10::str(w.a.sizes()),
                                                     " and lora_B ", c10::str(w.b.sizes()),
                                                     " are not [r, in] and [out, r] with r >= 1"));
  }
  if (layers.empty()) return absl::InvalidArgumentError("no LoRA adapter in it");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, LoraLayerWeights>> LoraLayers(
    const std::vector<std::pair<std::string, torch::Tensor>>& adapters, double alpha) {
  std::map<std::string, LoraLayerWeights> layers;
  for (const auto& [name, value] : adapters) {
    if (!IsLoraParameter(name))
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a LoRA adapter's parameter"));
    const bool is_a = absl::EndsWith(name, ".lora_A.weight");
    auto& w = layers[name.substr(0, name.size() - std::string(".lora_A.weight").size())];
    (is_a ? w.a : w.b) = value.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  }
  if (auto s = CheckLayers(layers); !s.ok()) return s;
  for (auto& [layer, w] : layers) w.scale = alpha / static_cast<double>(w.a.size(0));
  return layers;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraFileTensors(const std::map<std::string, LoraLayerWeights>& layers,
                                                                   const std::string& prefix) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [layer, w] : layers) {
    // Block layers: A, B and alpha (every loader reads it). Elsewhere (head, embeddings):
    // diffusers reads no alpha there and refuses the file if one is left, so alpha / r is
    // folded into A and the key is left out (scale 1 to every loader; see lora_keys.h).
    const bool alpha_key = LoraLayerInBlock(layer);
    out.emplace_back(absl::StrCat(prefix, layer, ".lora_A.weight"), alpha_key ? w.a : w.a * w.scale);
    out.emplace_back(absl::StrCat(prefix, layer, ".lora_B.weight"), w.b);
    if (alpha_key)
      out.emplace_back(absl::StrCat(prefix, layer, ".alpha"),
                       torch::tensor(static_cast<float>(w.scale * static_cast<double>(w.a.size(0)))));
  }
  return out;
}

absl::StatusOr<std::map<std::string, LoraLayerWeights>> ReadLoraFile(const std::string& path,
                                                                    std::map<std::string, std::string>* metadata) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  if (metadata != nullptr) *metadata = file->metadata();
  std::map<std::string, LoraLayerWeights> out;
  std::map<std::string, double> alphas;
  for (const auto& [key, entry] : file->entries()) {
    absl::string_view name = key;
    for (const char* prefix : {"diffusion_model.", "transformer.", "base_model.model."})
      if (absl::ConsumePrefix(&name, prefix)) break;
    auto value = file->Read(key);
    if (!value.ok()) return value.status();
    absl::string_view layer = name;
    if (absl::ConsumeSuffix(&layer, ".lora_A.weight")) {
      out[std::string(layer)].a = value->to(torch::kFloat32);
    } else if (absl::ConsumeSuffix(&layer, ".lora_B.weight")) {
      out[std::string(layer)].b = value->to(torch::kFloat32);
    } else if (absl::ConsumeSuffix(&layer, ".alpha") && value->numel() == 1) {
      alphas[std::string(layer)] = value->to(torch::kFloat64).item<double>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' is not a LoRA tensor (expected "
                                                     "<layer>.lora_A.weight, <layer>.lora_B.weight or a one-element "
                                                     "<layer>.alpha)"));
    }
  }
  if (auto s = CheckLayers(out); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  for (auto& [layer, w] : out) {
    auto alpha = alphas.find(layer);
    w.scale = alpha == alphas.end() ? 1.0 : alpha->second / static_cast<double>(w.a.size(0));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> MergeLora(
    const std::vector<std::pair<std::string, torch::Tensor>>& named,
    const std::map<std::string, LoraLayerWeights>& adapters) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < named.size(); ++i) index[named[i].first] = i;
  auto out = named;
  for (const auto& [layer, w] : adapters) {
    auto it = index.find(layer + ".weight");
    if (it == index.end())
      return absl::InvalidArgumentError(absl::StrCat("the adapter of '", layer, "' has no layer '", layer,
                                                     ".weight' in the base model: a LoRA of another model?"));
    const auto& weight = named[it->second].second;
    if (weight.dim() != 2 || weight.size(0) != w.b.size(0) || weight.size(1) != w.a.size(1))
      return absl::InvalidArgumentError(absl::StrCat("the adapter of '", layer, "' is [", w.b.size(0), " x ",
                                                     w.a.size(1), "] but the layer's weight is ",
                                                     c10::str(weight.sizes()), ": a LoRA of another model?"));
    out[it->second].second = MergedWeight(weight, w.a, w.b, w.scale);
  }
  return out;
}

std::string BaseChecksum(const torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> base;
  for (const auto& p : model.named_parameters())
    if (!IsLoraParameter(p.key())) base.emplace(p.key(), p.value());
  hpc::Crc32cStream crc;
  torch::NoGradGuard no_grad;
  for (const auto& [name, value] : base) {
    crc.Update(name.data(), name.size() + 1);  // with the terminating NUL: names cannot run into values
    // A block at a time: the fp32 copy of a large parameter never exists whole.
    const auto flat = value.detach().reshape({-1});
    constexpr int64_t kBlock = 1 << 22;
    for (int64_t begin = 0; begin < flat.numel(); begin += kBlock) {
      const auto part = flat.narrow(0, begin, std::min(kBlock, flat.numel() - begin))
                            .to(torch::kCPU, torch::kFloat32)
                            .contiguous();
      crc.Update(part.data_ptr(), static_cast<size_t>(part.numel()) * sizeof(float));
    }
  }
  return absl::StrFormat("crc32c:%08x", crc.value());
}

}  // namespace dancegrpo::models
