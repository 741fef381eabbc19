#include "models/torchscript_decoder.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpc/torch_error.h"

namespace dancegrpo::models {

struct TorchScriptDecoder::Impl {
  std::string path;
  torch::jit::Module module;
  torch::Device device = torch::kCPU;
  c10::optional<torch::ScalarType> dtype;
};

absl::StatusOr<std::shared_ptr<TorchScriptDecoder>> TorchScriptDecoder::Load(const std::string& path,
                                                                             const torch::Device& device) {
  auto d = std::shared_ptr<TorchScriptDecoder>(new TorchScriptDecoder());
  d->impl_ = std::make_shared<Impl>();
  d->impl_->path = path;
  d->impl_->device = device;
  try {
    d->impl_->module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load the TorchScript decoder ", path, ": ",
                                                   e.what_without_backtrace(),
                                                   " (save one with torch.jit.script(module).save(path))"));
  }
  auto method = d->impl_->module.find_method("forward");
  if (!method || method->function().getSchema().arguments().size() != 2)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the decoder's forward must take one argument, the latents [B, C, F, H, W]"));
  d->impl_->module.eval();
  for (const auto& p : d->impl_->module.parameters()) {
    d->impl_->dtype = p.scalar_type();
    break;
  }
  return d;
}

absl::Status CheckDecodedClips(const torch::Tensor& clips, int64_t batch, const std::string& source) {
  if (clips.dim() != 5 || clips.size(0) != batch || clips.size(1) != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " returned a tensor of shape [", absl::StrJoin(clips.sizes(), ", "), "] for ", batch,
        " latents; a decoder must return RGB clips [B, 3, F, H, W] (B = ", batch, ") in [-1, 1]"));
  }
  if (!torch::isfinite(clips).all().item<bool>()) {
    const auto bad = torch::isfinite(clips).logical_not().sum().item<int64_t>();
    return absl::DataLossError(absl::StrCat(source, " returned ", bad, " non-finite value(s) among ", clips.numel(),
                                            "; the rewards cannot score such clips (check the decoder's dtype and "
                                            "the latents' scale)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> TorchScriptDecoder::Decode(const torch::Tensor& latents) {
  torch::NoGradGuard no_grad;
  torch::Tensor out;
  try {
    auto in = latents.to(impl_->device);
    if (impl_->dtype) in = in.to(*impl_->dtype);
    auto value = impl_->module.forward({in});
    if (!value.isTensor())
      return absl::InvalidArgumentError(absl::StrCat("the decoder ", impl_->path, " did not return a tensor"));
    out = value.toTensor();
  } catch (const std::exception& e) {  // c10::Error, and torch::jit::JITException for a `raise`
    return absl::InternalError(absl::StrCat("the decoder ", impl_->path, " failed on latents [",
                                            absl::StrJoin(latents.sizes(), ", "), "]: ", hpc::ExceptionMessage(e)));
  }
  if (auto s = CheckDecodedClips(out, latents.size(0), absl::StrCat("the decoder ", impl_->path)); !s.ok()) return s;
  return out;
}

}  // namespace dancegrpo::models
