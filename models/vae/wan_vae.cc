#include "models/vae/wan_vae.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "glog/logging.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "hpc/torch_error.h"
#include "models/safetensors.h"
#include "models/torchscript_decoder.h"

namespace dancegrpo::models::vae {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

std::string ShapeText(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

// Wan's RMS_norm: F.normalize over channels (dim 1), times sqrt(C) and gamma, then (when `silu`)
// SiLU. In float32 whatever the dtype (as autocast runs normalisations), so bf16 rounds only the
// convolutions. One temporary and in-place passes: x.norm over the strided channel dimension and
// the chain of broadcasts Wan writes cost 4-10x this (measured, 384 x 4 x 24 x 24 and
// 96 x 4 x 96 x 96 on one core); clamping the squared sum at 1e-24 is F.normalize's 1e-12.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& gamma, bool silu) {
  const double scale = std::sqrt(static_cast<double>(x.size(1)));
  const auto xf = x.to(torch::kFloat);
  // Its own statement: the squares' temporary is gone before y is made.
  const auto inv_norm = (xf * xf).sum(1, /*keepdim=*/true).clamp_min_(1e-24).rsqrt_();
  auto y = xf * inv_norm;
  y.mul_(gamma.to(torch::kFloat) * scale);
  if (silu) torch::silu_(y);
  return y.to(x.scalar_type());
}

// Nearest x2 in H and W of [N, C, H, W] or [B, C, T, H, W] (Wan's "nearest-exact" at scale 2
// picks the same source pixels).
torch::Tensor Upsample2x(const torch::Tensor& x) {
  auto size = x.sizes().slice(2).vec();
  size[size.size() - 1] *= 2;
  size[size.size() - 2] *= 2;
  return F::interpolate(x, F::InterpolateFuncOptions().size(size).mode(torch::kNearest));
}

// Zero-pads `front` frames before x (dim 2).
torch::Tensor PadFront(const torch::Tensor& x, int64_t front) {
  if (front <= 0) return x;
  auto shape = x.sizes().vec();
  shape[2] = front;
  return torch::cat({torch::zeros(shape, x.options()), x}, 2);
}

// The last `n` frames of x (fewer if x has fewer).
torch::Tensor LastFrames(const torch::Tensor& x, int64_t n) {
  const int64_t t = x.size(2);
  return x.narrow(2, std::max<int64_t>(0, t - n), std::min(t, n));
}

// libtorch's CPU bf16 convolutions and GEMMs round as they accumulate (about 3% of the output's
// range per layer, measured), which compounds over the decoder's 30 layers; CUDA's accumulate
// in float32. So on the CPU a bf16 decoder keeps bf16 weights and activations (the memory) and
// computes each convolution in float32.
struct Compute {
  bool upcast = false;
  torch::Tensor In(const torch::Tensor& t) const { return upcast ? t.to(torch::kFloat) : t; }
  torch::Tensor Out(const torch::Tensor& t, const torch::Tensor& like) const {
    return upcast ? t.to(like.scalar_type()) : t;
  }
  torch::Tensor Conv3d(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                       torch::IntArrayRef padding = {0, 0, 0}) const {
    return Out(torch::conv3d(In(x), In(w), In(b), 1, padding), x);
  }
  torch::Tensor Conv2d(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                       int64_t padding = 0) const {
    return Out(torch::conv2d(In(x), In(w), In(b), 1, padding), x);
  }
};

}  // namespace

WanVaeConfig WanVaeConfig::Wan21() {
  WanVaeConfig c;
  c.latents_mean = {-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                    0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
  c.latents_std = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                   3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};
  return c;
}

int64_t WanVaeConfig::temporal_stride() const {
  int64_t s = 1;
  for (bool t : temporal_downsample) s *= t ? 2 : 1;
  return s;
}

int64_t WanVaeConfig::spatial_stride() const { return int64_t{1} << (dim_mult.size() - 1); }

absl::Status ValidateWanVaeConfig(const WanVaeConfig& c) {
  auto bad = [](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat("Wan VAE config: ", why)); };
  if (c.dim <= 0 || c.dim % 2 != 0) return bad(absl::StrCat("dim = ", c.dim, "; it must be positive and even"));
  if (c.z_dim <= 0) return bad(absl::StrCat("z_dim = ", c.z_dim, "; it must be positive"));
  if (c.num_res_blocks <= 0) return bad(absl::StrCat("num_res_blocks = ", c.num_res_blocks, "; it must be positive"));
  if (c.dim_mult.size() < 2) return bad("dim_mult needs at least 2 entries (Wan2.1: [1, 2, 4, 4])");
  for (int64_t m : c.dim_mult)
    if (m <= 0) return bad(absl::StrCat("dim_mult has ", m, "; every entry must be positive"));
  if (c.temporal_downsample.size() != c.dim_mult.size() - 1)
    return bad(absl::StrCat("temperal_downsample has ", c.temporal_downsample.size(), " entries; dim_mult's ",
                            c.dim_mult.size(), " stages need ", c.dim_mult.size() - 1));
  if (static_cast<int64_t>(c.latents_mean.size()) != c.z_dim || static_cast<int64_t>(c.latents_std.size()) != c.z_dim)
    return bad(absl::StrCat("latents_mean and latents_std need z_dim = ", c.z_dim, " values each (have ",
                            c.latents_mean.size(), " and ", c.latents_std.size(), ")"));
  for (float s : c.latents_std)
    if (!(s > 0) || !std::isfinite(s)) return bad(absl::StrCat("latents_std has ", s, "; every entry must be > 0"));
  for (float m : c.latents_mean)
    if (!std::isfinite(m)) return bad("latents_mean has a non-finite value");
  return absl::OkStatus();
}

absl::StatusOr<WanVaeConfig> WanVaeConfigFromDiffusersJson(const std::string& json_text, const std::string& source) {
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat(source, ": ", why)); };
  auto j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object (expected diffusers' AutoencoderKLWan config)");
  if (j.contains("_class_name") && j["_class_name"].is_string() && j["_class_name"] != "AutoencoderKLWan")
    return bad(absl::StrCat("_class_name is ", j["_class_name"].get<std::string>(), ", not AutoencoderKLWan"));
  if (j.contains("is_residual") && j["is_residual"].is_boolean() && j["is_residual"].get<bool>())
    return bad("is_residual is true: that is Wan2.2's VAE, which this decoder (Wan2.1's) does not implement");
  if (j.contains("patch_size") && !j["patch_size"].is_null() && !(j["patch_size"].is_number() && j["patch_size"] == 1))
    return bad("patch_size is set: that is Wan2.2's VAE, which this decoder (Wan2.1's) does not implement");
  if (j.contains("attn_scales") && !(j["attn_scales"].is_array() && j["attn_scales"].empty()))
    return bad("attn_scales is not empty; Wan2.1's decoder (and diffusers') has attention only in its middle");
  if (j.contains("out_channels") && !(j["out_channels"].is_number_integer() && j["out_channels"] == 3))
    return bad("out_channels is not 3; the decoder writes RGB");
  WanVaeConfig c = WanVaeConfig::Wan21();
  try {
    if (j.contains("base_dim")) c.dim = j["base_dim"].get<int64_t>();
    if (j.contains("decoder_base_dim") && !j["decoder_base_dim"].is_null()) c.dim = j["decoder_base_dim"].get<int64_t>();
    if (j.contains("z_dim")) c.z_dim = j["z_dim"].get<int64_t>();
    if (j.contains("dim_mult")) c.dim_mult = j["dim_mult"].get<std::vector<int64_t>>();
    if (j.contains("num_res_blocks")) c.num_res_blocks = j["num_res_blocks"].get<int64_t>();
    if (j.contains("temperal_downsample")) c.temporal_downsample = j["temperal_downsample"].get<std::vector<bool>>();
    if (j.contains("latents_mean")) c.latents_mean = j["latents_mean"].get<std::vector<float>>();
    if (j.contains("latents_std")) c.latents_std = j["latents_std"].get<std::vector<float>>();
  } catch (const std::exception& e) {
    return bad(absl::StrCat("a field has the wrong type: ", e.what()));
  }
  if (auto s = ValidateWanVaeConfig(c); !s.ok()) return bad(std::string(s.message()));
  return c;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> WanVaeDecoderLayout(const WanVaeConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  auto conv3 = [&](const std::string& p, int64_t in, int64_t o, std::vector<int64_t> k) {
    std::vector<int64_t> shape = {o, in};
    shape.insert(shape.end(), k.begin(), k.end());
    out.push_back({p + ".weight", shape});
    out.push_back({p + ".bias", {o}});
  };
  auto residual = [&](const std::string& p, int64_t in, int64_t o) {
    out.push_back({p + ".residual.0.gamma", {in, 1, 1, 1}});
    conv3(p + ".residual.2", in, o, {3, 3, 3});
    out.push_back({p + ".residual.3.gamma", {o, 1, 1, 1}});
    conv3(p + ".residual.6", o, o, {3, 3, 3});
    if (in != o) conv3(p + ".shortcut", in, o, {1, 1, 1});
  };
  std::vector<int64_t> dims = {c.dim * c.dim_mult.back()};
  for (auto it = c.dim_mult.rbegin(); it != c.dim_mult.rend(); ++it) dims.push_back(c.dim * *it);
  conv3("conv2", c.z_dim, c.z_dim, {1, 1, 1});
  conv3("decoder.conv1", c.z_dim, dims[0], {3, 3, 3});
  residual("decoder.middle.0", dims[0], dims[0]);
  out.push_back({"decoder.middle.1.norm.gamma", {dims[0], 1, 1}});
  conv3("decoder.middle.1.to_qkv", dims[0], 3 * dims[0], {1, 1});
  conv3("decoder.middle.1.proj", dims[0], dims[0], {1, 1});
  residual("decoder.middle.2", dims[0], dims[0]);
  int64_t k = 0;
  const size_t stages = c.dim_mult.size();
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    const int64_t o = dims[i + 1];
    for (int64_t r = 0; r <= c.num_res_blocks; ++r, in = o) residual(absl::StrCat("decoder.upsamples.", k++), in, o);
    if (i + 1 != stages) {
      const std::string p = absl::StrCat("decoder.upsamples.", k++);
      conv3(p + ".resample.1", o, o / 2, {3, 3});
      if (c.temporal_downsample[stages - 2 - i]) conv3(p + ".time_conv", o, 2 * o, {3, 1, 1});
    }
  }
  out.push_back({"decoder.head.0.gamma", {dims.back(), 1, 1, 1}});
  conv3("decoder.head.2", dims.back(), 3, {3, 3, 3});
  return out;
}

std::optional<std::string> WanNameFromDiffusers(const std::string& name, int64_t num_res_blocks) {
  static const std::map<std::string, std::string> kResidual = {
      {"norm1.gamma", "residual.0.gamma"},     {"conv1.weight", "residual.2.weight"},
      {"conv1.bias", "residual.2.bias"},       {"norm2.gamma", "residual.3.gamma"},
      {"conv2.weight", "residual.6.weight"},   {"conv2.bias", "residual.6.bias"},
      {"conv_shortcut.weight", "shortcut.weight"}, {"conv_shortcut.bias", "shortcut.bias"}};
  auto residual = [&](const std::string& prefix, const std::string& tail) -> std::optional<std::string> {
    auto it = kResidual.find(tail);
    if (it == kResidual.end()) return std::nullopt;
    return prefix + it->second;
  };
  auto strip = [&](const std::string& p, std::string* rest) {
    if (!absl::StartsWith(name, p)) return false;
    *rest = name.substr(p.size());
    return true;
  };
  std::string rest;
  if (strip("post_quant_conv.", &rest)) return "conv2." + rest;
  if (strip("decoder.conv_in.", &rest)) return "decoder.conv1." + rest;
  if (strip("decoder.norm_out.", &rest)) return "decoder.head.0." + rest;
  if (strip("decoder.conv_out.", &rest)) return "decoder.head.2." + rest;
  if (strip("decoder.mid_block.attentions.0.", &rest)) return "decoder.middle.1." + rest;
  if (strip("decoder.mid_block.resnets.0.", &rest)) return residual("decoder.middle.0.", rest);
  if (strip("decoder.mid_block.resnets.1.", &rest)) return residual("decoder.middle.2.", rest);
  if (strip("decoder.up_blocks.", &rest)) {
    std::vector<std::string> parts = absl::StrSplit(rest, absl::MaxSplits('.', 3));
    int64_t block = 0, j = 0;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &block) || !absl::SimpleAtoi(parts[2], &j)) return std::nullopt;
    const int64_t per_block = num_res_blocks + 2;  // the residual blocks, then one resample
    if (parts[1] == "resnets" && j <= num_res_blocks)
      return residual(absl::StrCat("decoder.upsamples.", block * per_block + j, "."), parts[3]);
    if (parts[1] == "upsamplers" && j == 0)
      return absl::StrCat("decoder.upsamples.", block * per_block + num_res_blocks + 1, ".", parts[3]);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Loading.

absl::StatusOr<std::shared_ptr<WanVaeDecoder>> WanVaeDecoder::FromTensors(const WanVaeConfig& config,
                                                                         std::map<std::string, torch::Tensor> tensors,
                                                                         const WanVaeOptions& options,
                                                                         const std::string& source) {
  if (auto s = ValidateWanVaeConfig(config); !s.ok()) return s;
  if (options.dtype != torch::kFloat && options.dtype != torch::kBFloat16)
    return absl::InvalidArgumentError("the Wan VAE decoder computes in float32 or bfloat16");
  const int64_t s = config.spatial_stride();
  if (options.tiling && (options.tile <= 0 || options.tile % s != 0 || options.tile_stride <= 0 ||
                         options.tile_stride % s != 0 || options.tile_stride >= options.tile))
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE tiling: tile ", options.tile, " and stride ", options.tile_stride, " must be multiples of ", s,
        " pixels with 0 < stride < tile (diffusers' defaults: 256 and 192)"));
  auto d = std::shared_ptr<WanVaeDecoder>(new WanVaeDecoder());
  d->config_ = config;
  d->options_ = options;
  d->source_ = source;
  std::vector<std::string> missing, misshapen;
  for (const auto& [name, shape] : WanVaeDecoderLayout(config)) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.sizes().vec() != shape) {
      misshapen.push_back(
          absl::StrCat(name, " is ", ShapeText(it->second.sizes().vec()), ", expected ", ShapeText(shape)));
      continue;
    }
    d->w_[name] = it->second.to(options.device, options.dtype).contiguous();
    tensors.erase(it);
  }
  auto listed = [](std::vector<std::string> v) {
    const size_t n = v.size();
    if (v.size() > 4) v.resize(4), v.push_back(absl::StrCat("... (", n, " in all)"));
    return absl::StrJoin(v, "; ");
  };
  const std::string fix =
      absl::StrCat(" (the config says dim ", config.dim, ", z_dim ", config.z_dim, ", dim_mult [",
                   absl::StrJoin(config.dim_mult, ", "), "], num_res_blocks ", config.num_res_blocks,
                   "; is this Wan2.1's VAE, and its config.json beside it?)");
  if (!misshapen.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": tensor shapes differ from the config: ",
                                                   listed(misshapen), fix));
  if (!missing.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing decoder tensors: ", listed(missing), fix));
  std::vector<std::string> unknown;
  for (const auto& [name, t] : tensors)
    if (!absl::StartsWith(name, "encoder.") && !absl::StartsWith(name, "conv1.")) unknown.push_back(name);
  if (!unknown.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": tensors that are not Wan2.1 VAE decoder tensors: ",
                                                   listed(unknown), fix));
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat);
  d->upcast_ = options.dtype == torch::kBFloat16 && options.device.is_cpu();
  d->mean_ = torch::tensor(config.latents_mean, fopts).view({1, -1, 1, 1, 1}).to(options.device);
  d->inv_std_ = (1.0 / torch::tensor(config.latents_std, fopts)).view({1, -1, 1, 1, 1}).to(options.device);
  // One slot per causal 3x3x3 / (3,1,1) convolution and temporal up-sampling, in call order.
  for (const auto& [name, shape] : WanVaeDecoderLayout(config))
    if (absl::EndsWith(name, ".weight") && shape.size() == 5 && shape[2] == 3) ++d->cached_convs_;
  return d;
}

absl::StatusOr<std::shared_ptr<WanVaeDecoder>> WanVaeDecoder::FromFile(const WanVaeConfig& config,
                                                                      const std::string& file,
                                                                      const WanVaeOptions& options) {
  if (absl::EndsWith(file, ".pth") || absl::EndsWith(file, ".pt") || absl::EndsWith(file, ".ckpt"))
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": libtorch cannot read a torch.save'd state dict; convert it once with Debian's python3-torch: "
              "/usr/bin/python3 scripts/wan_vae/pth_to_safetensors.py ",
        file, " ", fs::path(file).replace_extension(".safetensors").string()));
  auto st = SafetensorsFile::Open(file);
  if (!st.ok()) return st.status();
  const bool diffusers = st->entries().count("decoder.conv_in.weight") > 0;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, entry] : st->entries()) {
    std::string wan = name;
    if (diffusers) {
      if (absl::StartsWith(name, "encoder.") || absl::StartsWith(name, "quant_conv.")) continue;
      auto mapped = WanNameFromDiffusers(name, config.num_res_blocks);
      if (!mapped) {
        tensors[name] = torch::Tensor();  // reported as unknown below
        continue;
      }
      wan = *mapped;
    } else if (absl::StartsWith(name, "encoder.") || absl::StartsWith(name, "conv1.")) {
      continue;
    }
    auto t = st->Read(name);
    if (!t.ok()) return t.status();
    tensors[wan] = *t;
  }
  return FromTensors(config, std::move(tensors), options,
                     absl::StrCat(file, diffusers ? " (diffusers' names)" : " (Wan's names)"));
}

namespace {

// Where Load finds the weights and the config of `path`.
struct WanVaeFiles {
  fs::path config, weights;  // config empty: none found
};

absl::StatusOr<WanVaeFiles> FindWanVaeFiles(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (!fs::exists(p, ec))
    return absl::NotFoundError(absl::StrCat(path, ": no such file or folder (give a diffusers VAE folder with "
                                            "config.json and diffusion_pytorch_model.safetensors, or a .safetensors "
                                            "file)"));
  WanVaeFiles f;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "vae" / "config.json", ec)) p = p / "vae";
    f.config = p / "config.json";
    f.weights = p / "diffusion_pytorch_model.safetensors";
    if (!fs::exists(f.config, ec) || !fs::exists(f.weights, ec))
      return absl::NotFoundError(absl::StrCat(path, ": a Wan VAE folder needs config.json and "
                                              "diffusion_pytorch_model.safetensors (diffusers' layout; a model folder "
                                              "with them in vae/ works too)"));
  } else {
    f.weights = p;
    if (fs::exists(p.parent_path() / "config.json", ec)) f.config = p.parent_path() / "config.json";
  }
  return f;
}

}  // namespace

absl::StatusOr<WanVaeConfig> ReadWanVaeConfig(const std::string& path) {
  auto files = FindWanVaeFiles(path);
  if (!files.ok()) return files.status();
  WanVaeConfig config = WanVaeConfig::Wan21();
  if (files->config.empty()) return config;
  std::ifstream in(files->config);
  std::stringstream text;
  text << in.rdbuf();
  auto c = WanVaeConfigFromDiffusersJson(text.str(), files->config.string());
  if (c.ok()) return *c;
  // A config.json beside a bare .safetensors file may belong to something else (the DiT).
  std::error_code ec;
  if (fs::is_directory(fs::path(path), ec)) return c.status();
  return config;
}

absl::StatusOr<std::shared_ptr<WanVaeDecoder>> WanVaeDecoder::Load(const std::string& path,
                                                                  const WanVaeOptions& options) {
  auto files = FindWanVaeFiles(path);
  if (!files.ok()) return files.status();
  auto config = ReadWanVaeConfig(path);
  if (!config.ok()) return config.status();
  return FromFile(*config, files->weights.string(), options);
}

absl::StatusOr<std::optional<WanVaeSpec>> ParseWanVaeSpec(const std::string& spec) {
  constexpr absl::string_view kWan = "wan-vae:";
  if (!absl::StartsWith(spec, kWan)) return std::optional<WanVaeSpec>();
  std::vector<std::string> parts = absl::StrSplit(spec.substr(kWan.size()), ',');
  WanVaeSpec out;
  out.path = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    int64_t v = 0;
    if (kv.first == "tiled" && kv.second.empty()) {
      out.options.tiling = true;
    } else if ((kv.first == "tile" || kv.first == "stride") && absl::SimpleAtoi(kv.second, &v)) {
      out.options.tiling = true;
      (kv.first == "tile" ? out.options.tile : out.options.tile_stride) = v;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", parts[i], "' in ", spec, " is not a Wan VAE option; use wan-vae:PATH[,tiled][,tile=PIXELS][,stride=PIXELS] ",
          "(e.g. wan-vae:Wan2.1-T2V-1.3B-Diffusers/vae,tile=256,stride=192)"));
    }
  }
  if (out.path.empty()) return absl::InvalidArgumentError(absl::StrCat(spec, ": give the VAE's path after wan-vae:"));
  return std::optional<WanVaeSpec>(out);
}

// Measured by bench/vae_bench (docs/experiments/2026-12-03-wan-vae-numerics.md): the chunk's
// peak working set in units of its largest tensor.
constexpr double kChunkTensors = 8.0;

WanVaeDecodeMemory PlanWanVaeDecode(const WanVaeConfig& c, const WanVaeOptions& o, int64_t batch, int64_t frames,
                                    int64_t height, int64_t width) {
  WanVaeDecodeMemory m;
  const int64_t s = o.dtype == torch::kBFloat16 ? 2 : 4;
  const int64_t s_work = o.device.is_cpu() ? 4 : s;  // bf16 on the CPU computes its convolutions in fp32
  for (const auto& [name, shape] : WanVaeDecoderLayout(c)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    m.weights += n * s;
  }
  const int64_t st = c.spatial_stride();
  const int64_t tile_l = o.tile / st;
  const bool tiled = o.tiling && (height > tile_l || width > tile_l);
  const int64_t h = tiled ? std::min(height, tile_l) : height, w = tiled ? std::min(width, tile_l) : width;
  // Walk the decoder as DecodeChunk does: channels, resolution and frames per chunk.
  std::vector<int64_t> dims = {c.dim * c.dim_mult.back()};
  for (auto it = c.dim_mult.rbegin(); it != c.dim_mult.rend(); ++it) dims.push_back(c.dim * *it);
  int64_t scale = 1, t = 1, largest = 0, cache_elems = 0;
  auto cache_slot = [&](int64_t ch) { cache_elems += 2 * ch * (h * scale) * (w * scale); };
  auto tensor = [&](int64_t ch) { largest = std::max(largest, ch * t * (h * scale) * (w * scale)); };
  cache_slot(c.z_dim);  // conv1
  for (int r = 0; r < 4; ++r) cache_slot(dims[0]);  // the middle's two residual blocks
  tensor(dims[0]);
  const size_t stages = c.dim_mult.size();
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    const int64_t out = dims[i + 1];
    for (int64_t r = 0; r <= c.num_res_blocks; ++r, in = out) cache_slot(in), cache_slot(out), tensor(out);
    if (i + 1 != stages) {
      if (c.temporal_downsample[stages - 2 - i] && frames > 1) {
        cache_slot(out);
        t *= 2;
      }
      scale *= 2;
      tensor(out);  // the up-sampled input of the resample's convolution
    }
  }
  cache_slot(dims.back());  // head
  m.cache = cache_elems * s * batch;
  m.chunk = static_cast<int64_t>(kChunkTensors * static_cast<double>(largest * s_work * batch));
  const int64_t video = c.VideoFrames(frames);
  const int64_t clip = batch * 3 * video * height * st * width * st;
  m.output = clip * (2 * s + 4);  // the chunks, the joined clip, and the clamped fp32 copy
  if (tiled) {
    const int64_t stride_l = o.tile_stride / st;
    int64_t tile_elems = 0;
    for (int64_t i = 0; i < height; i += stride_l)
      for (int64_t j = 0; j < width; j += stride_l)
        tile_elems += batch * 3 * video * std::min(tile_l, height - i) * st * std::min(tile_l, width - j) * st;
    m.tiles = 2 * tile_elems * s;  // every tile's decode, then its blended copy
  }
  return m;
}

const torch::Tensor& WanVaeDecoder::W(const std::string& name) const {
  auto it = w_.find(name);
  CHECK(it != w_.end()) << "Wan VAE tensor " << name << " was not loaded";
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// The decoder.

struct WanVaeDecoder::Cache {
  // Per slot: the last input frames of a causal convolution, or, for a temporal up-sampling,
  // undefined until its first chunk has passed ("Rep" in Wan's code: `rep` set) and then the
  // last frames of its input.
  std::vector<torch::Tensor> feats;
  std::vector<bool> rep;
  int64_t idx = 0;
  explicit Cache(int64_t n) : feats(n), rep(n, false) {}
};

// Wan's cached causal convolution: the input's last two frames (with the previous cache's last
// frame in front when the input has one) become the cache; the previous cache replaces as many
// frames of zero padding.
torch::Tensor WanVaeDecoder::CachedConv(const std::string& prefix, torch::Tensor x, Cache& cache) {
  const int64_t i = cache.idx++;
  torch::Tensor& old = cache.feats[i];
  torch::Tensor next = LastFrames(x, 2).clone();
  if (next.size(2) < 2 && old.defined()) next = torch::cat({LastFrames(old, 1), next}, 2);
  const auto& w = W(prefix + ".weight");
  const int64_t kt = w.size(2), ks = w.size(3), frames = x.size(2);
  int64_t front = kt - 1;  // causal padding 2 * (kt / 2)
  torch::Tensor in = std::move(x);  // one live copy of the input at a time
  if (old.defined() && front > 0) {
    in = torch::cat({old, in}, 2);
    front -= old.size(2);
  }
  torch::Tensor out;
  if (front > 0 && frames == 1) {
    // One output frame: the `front` zero frames meet only the kernel's first taps, which are
    // skipped (Wan computes them: zeros times weights). The first chunk is all such convolutions.
    out = Compute{upcast_}.Conv3d(in, w.narrow(2, front, kt - front), W(prefix + ".bias"), {0, ks / 2, ks / 2});
  } else {
    in = PadFront(in, front);
    out = Compute{upcast_}.Conv3d(in, w, W(prefix + ".bias"), {0, ks / 2, ks / 2});
  }
  old = next;
  return out;
}

torch::Tensor WanVaeDecoder::Residual(const std::string& prefix, torch::Tensor x, Cache& cache) {
  torch::Tensor h = x;
  if (w_.count(prefix + ".shortcut.weight"))
    h = Compute{upcast_}.Conv3d(x, W(prefix + ".shortcut.weight"), W(prefix + ".shortcut.bias"));
  auto y = RmsNorm(x, W(prefix + ".residual.0.gamma"), /*silu=*/true);
  if (w_.count(prefix + ".shortcut.weight")) x.reset();  // h holds what the sum needs
  y = CachedConv(prefix + ".residual.2", std::move(y), cache);
  y = RmsNorm(y, W(prefix + ".residual.3.gamma"), /*silu=*/true);
  y = CachedConv(prefix + ".residual.6", std::move(y), cache);
  return y.add_(h);
}

torch::Tensor WanVaeDecoder::Attention(const std::string& prefix, const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  auto y = x.permute({0, 2, 1, 3, 4}).reshape({b * t, c, h, w});
  y = RmsNorm(y, W(prefix + ".norm.gamma"), /*silu=*/false);
  const Compute compute{upcast_};
  auto qkv = compute.In(compute.Conv2d(y, W(prefix + ".to_qkv.weight"), W(prefix + ".to_qkv.bias")));
  qkv = qkv.reshape({b * t, 3 * c, h * w}).permute({0, 2, 1});  // [bt, hw, 3c]
  auto parts = qkv.chunk(3, -1);
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  auto a = at::scaled_dot_product_attention(parts[0].unsqueeze(1), parts[1].unsqueeze(1), parts[2].unsqueeze(1))
               .squeeze(1);
#else
  auto scores = torch::matmul(parts[0], parts[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(c));
  auto a = torch::matmul(scores.softmax(-1), parts[2]);
#endif
  a = a.permute({0, 2, 1}).reshape({b * t, c, h, w});
  a = compute.Conv2d(compute.Out(a, x), W(prefix + ".proj.weight"), W(prefix + ".proj.bias"));
  return a.view({b, t, c, h, w}).permute({0, 2, 1, 3, 4}) + x;
}

torch::Tensor WanVaeDecoder::Upsample(const std::string& prefix, bool temporal, torch::Tensor x, Cache& cache) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(3), w = x.size(4);
  if (temporal) {
    const int64_t i = cache.idx++;
    if (!cache.rep[i] && !cache.feats[i].defined()) {
      cache.rep[i] = true;  // the first chunk: one frame stays one frame
    } else {
      torch::Tensor next = LastFrames(x, 2).clone();
      if (next.size(2) < 2) next = torch::cat({cache.rep[i] ? torch::zeros_like(next) : LastFrames(cache.feats[i], 1), next}, 2);
      const auto& wt = W(prefix + ".time_conv.weight");
      torch::Tensor padded = cache.rep[i] ? PadFront(x, 2) : PadFront(torch::cat({cache.feats[i], x}, 2),
                                                                        2 - cache.feats[i].size(2));
      const int64_t t = x.size(2);
      auto y = Compute{upcast_}.Conv3d(padded, wt, W(prefix + ".time_conv.bias"));  // [b, 2c, t, h, w]
      padded.reset();
      cache.rep[i] = false;
      cache.feats[i] = next;
      x = torch::stack({y.narrow(1, 0, c), y.narrow(1, c, c)}, 3).reshape({b, c, 2 * t, h, w});
    }
  }
  // Wan's per-frame Conv2d. One frame: as a 2D convolution. More: as a 3D one with a 1x3x3
  // kernel on the up-sampled [B, C, T, 2H, 2W], which saves the two transpositions of the
  // frames-as-batch layout (a quarter of the stage's time at 4 frames, measured).
  const auto& w2 = W(prefix + ".resample.1.weight");
  const auto& b2 = W(prefix + ".resample.1.bias");
  if (x.size(2) == 1) {
    x = Upsample2x(x.squeeze(2));
    return Compute{upcast_}.Conv2d(x, w2, b2, 1).unsqueeze(2);
  }
  x = Upsample2x(x);  // the input goes before the convolution runs
  return Compute{upcast_}.Conv3d(x, w2.unsqueeze(2), b2, {0, 1, 1});
}

torch::Tensor WanVaeDecoder::DecodeChunk(const torch::Tensor& in, Cache& cache) {
  cache.idx = 0;
  auto x = CachedConv("decoder.conv1", in, cache);
  x = Residual("decoder.middle.0", std::move(x), cache);
  x = Attention("decoder.middle.1", x);
  x = Residual("decoder.middle.2", std::move(x), cache);
  int64_t k = 0;
  const size_t stages = config_.dim_mult.size();
  for (size_t i = 0; i < stages; ++i) {
    for (int64_t r = 0; r <= config_.num_res_blocks; ++r) x = Residual(absl::StrCat("decoder.upsamples.", k++), std::move(x), cache);
    if (i + 1 != stages)
      x = Upsample(absl::StrCat("decoder.upsamples.", k++), config_.temporal_downsample[stages - 2 - i], std::move(x),
                   cache);
  }
  x = RmsNorm(x, W("decoder.head.0.gamma"), /*silu=*/true);
  x = CachedConv("decoder.head.2", std::move(x), cache);
  CHECK_EQ(cache.idx, cached_convs_) << "Wan VAE: cache slots out of step";
  return x;
}

torch::Tensor WanVaeDecoder::DecodeWhole(const torch::Tensor& x) {
  Cache cache(cached_convs_);
  std::vector<torch::Tensor> chunks;
  for (int64_t f = 0; f < x.size(2); ++f) chunks.push_back(DecodeChunk(x.narrow(2, f, 1), cache));
  return torch::cat(chunks, 2);
}

// diffusers' tiled_decode: tiles of tile/8 latents every stride/8, each decoded whole, the
// overlap (tile - stride pixels) blended linearly with the tile above and the tile to the left.
torch::Tensor WanVaeDecoder::DecodeTiled(const torch::Tensor& x) {
  const int64_t s = config_.spatial_stride();
  const int64_t h = x.size(3), w = x.size(4);
  const int64_t tile_l = options_.tile / s, stride_l = options_.tile_stride / s;
  const int64_t blend = options_.tile - options_.tile_stride;
  std::vector<std::vector<torch::Tensor>> rows;
  for (int64_t i = 0; i < h; i += stride_l) {
    std::vector<torch::Tensor> row;
    for (int64_t j = 0; j < w; j += stride_l)
      row.push_back(DecodeWhole(x.narrow(3, i, std::min(tile_l, h - i)).narrow(4, j, std::min(tile_l, w - j))));
    rows.push_back(std::move(row));
  }
  auto ramp = [&](int64_t n, int64_t dim, const torch::Tensor& like) {
    auto r = torch::arange(n, like.options().dtype(torch::kFloat)) / static_cast<double>(n);
    std::vector<int64_t> shape(5, 1);
    shape[dim] = n;
    return r.view(shape).to(like.dtype());
  };
  std::vector<torch::Tensor> out_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<torch::Tensor> out_row;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      torch::Tensor tile = rows[i][j].clone();
      if (i > 0) {
        const auto& above = rows[i - 1][j];
        const int64_t n = std::min({above.size(3), tile.size(3), blend});
        auto r = ramp(n, 3, tile);
        tile.narrow(3, 0, n).copy_(above.narrow(3, above.size(3) - n, n) * (1 - r) + tile.narrow(3, 0, n) * r);
      }
      if (j > 0) {
        const auto& left = rows[i][j - 1];  // already blended with the row above, as diffusers does
        const int64_t n = std::min({left.size(4), tile.size(4), blend});
        auto r = ramp(n, 4, tile);
        tile.narrow(4, 0, n).copy_(left.narrow(4, left.size(4) - n, n) * (1 - r) + tile.narrow(4, 0, n) * r);
      }
      rows[i][j] = tile;
      out_row.push_back(tile.narrow(3, 0, std::min(options_.tile_stride, tile.size(3)))
                            .narrow(4, 0, std::min(options_.tile_stride, tile.size(4))));
    }
    out_rows.push_back(torch::cat(out_row, 4));
  }
  return torch::cat(out_rows, 3).narrow(3, 0, h * s).narrow(4, 0, w * s);
}

torch::Tensor WanVaeDecoder::DecodeUnclamped(const torch::Tensor& latents) {
  torch::NoGradGuard no_grad;
  auto z = latents.to(options_.device, torch::kFloat);
  z = (z / inv_std_ + mean_).to(options_.dtype);  // Wan: z / scale[1] + scale[0]
  auto x = Compute{upcast_}.Conv3d(z, W("conv2.weight"), W("conv2.bias"));
  const int64_t tile_l = options_.tile / config_.spatial_stride();
  if (options_.tiling && (x.size(3) > tile_l || x.size(4) > tile_l)) return DecodeTiled(x);
  return DecodeWhole(x);
}

absl::StatusOr<torch::Tensor> WanVaeDecoder::Decode(const torch::Tensor& latents) {
  if (latents.dim() != 5 || latents.size(1) != config_.z_dim)
    return absl::InvalidArgumentError(absl::StrCat("the Wan VAE (", source_, ") decodes latents [B, ", config_.z_dim,
                                                   ", F, H, W]; got ", ShapeText(latents.sizes().vec()),
                                                   " (does --latent_shape match the VAE's z_dim?)"));
  torch::Tensor out;
  try {
    out = DecodeUnclamped(latents).clamp(-1, 1).to(torch::kFloat);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the Wan VAE (", source_, ") failed: ", hpc::ExceptionMessage(e)));
  }
  if (auto s = CheckDecodedClips(out, latents.size(0), absl::StrCat("the Wan VAE (", source_, ")")); !s.ok()) return s;
  return out;
}

}  // namespace dancegrpo::models::vae
