#include "models/decoder_frames.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpc/torch_error.h"

namespace dancegrpo::models {
namespace {

const char kTraceHint[] =
    "a decoder exported with torch.jit.trace keeps the number of frames it was traced with; for Wan's VAE "
    "use the native decoder (--decoder=wan-vae:DIR), otherwise export a decoder whose frame count follows "
    "the latents (docs/own_model_inputs.md)";

absl::StatusOr<int64_t> ProbeFrames(LatentDecoder& decoder, std::vector<int64_t> shape, const std::string& source) {
  shape.insert(shape.begin(), 1);
  absl::StatusOr<torch::Tensor> out = absl::UnknownError("not run");
  try {
    out = decoder.Decode(torch::zeros(shape));
  } catch (const std::exception& e) {
    out = absl::InternalError(hpc::ExceptionMessage(e));
  }
  if (!out.ok())
    return absl::Status(out.status().code(), absl::StrCat(source, " on latents [", absl::StrJoin(shape, ", "),
                                                          "]: ", out.status().message()));
  if (out->dim() != 5)
    return absl::InvalidArgumentError(absl::StrCat(source, " returned a ", out->dim(),
                                                   "-d tensor; a decoder returns clips [B, 3, F, H, W]"));
  return out->size(2);
}

}  // namespace

std::string FrameRule::ToString() const {
  return causal ? absl::StrCat("1 + ", stride, " (F - 1)") : absl::StrCat(stride, " F");
}

absl::StatusOr<FrameRule> InferFrameRule(LatentDecoder& decoder, const std::vector<int64_t>& latent_shape,
                                         const std::string& source) {
  if (latent_shape.size() != 4)
    return absl::InvalidArgumentError(absl::StrCat("a video decoder needs latents C,F,H,W; got ",
                                                   latent_shape.size(), " dimensions"));
  const int64_t f = latent_shape[1];
  auto a = ProbeFrames(decoder, latent_shape, source);
  if (!a.ok()) return a.status();
  auto next_shape = latent_shape;
  next_shape[1] = f + 1;
  auto b = ProbeFrames(decoder, next_shape, source);
  if (!b.ok())
    return absl::Status(b.status().code(),
                        absl::StrCat(source, " decodes ", f, " latent frames but fails on ", f + 1, ", so its frame ",
                                     "count cannot be checked: ", kTraceHint, ". The failure: ", b.status().message()));
  const int64_t stride = *b - *a;
  if (stride <= 0)
    return absl::FailedPreconditionError(absl::StrCat(source, " returns ", *a, " video frames for ", f,
                                                      " latent frames and ", *b, " for ", f + 1,
                                                      ": its frame count does not follow the latents, so clips "
                                                      "would be silently cut; ",
                                                      kTraceHint));
  for (bool causal : {true, false}) {
    FrameRule rule{stride, causal};
    if (rule.Frames(f) == *a) return rule;
  }
  return absl::FailedPreconditionError(absl::StrCat(source, " returns ", *a, " video frames for ", f,
                                                    " latent frames and ", *b, " for ", f + 1, ", which fits neither ",
                                                    "1 + s (F - 1) nor s F; ", kTraceHint));
}

absl::StatusOr<torch::Tensor> FrameCheckedDecoder::Decode(const torch::Tensor& latents) {
  auto out = inner_->Decode(latents);
  if (!out.ok()) return out;
  const int64_t expected = rule_.Frames(latents.size(2));
  if (out->dim() != 5 || out->size(2) != expected)
    return absl::FailedPreconditionError(absl::StrCat(
        source_, " returned ", out->dim() == 5 ? out->size(2) : int64_t{-1}, " video frames for ", latents.size(2),
        " latent frames; its rule (", rule_.ToString(), ") says ", expected, "; ", kTraceHint));
  return out;
}

}  // namespace dancegrpo::models
