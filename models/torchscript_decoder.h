// A latent decoder exported from Python as TorchScript (a VAE decoder, or any module that
// maps latents to pixels):
//
//   class Decoder(torch.nn.Module):
//       def forward(self, latents: torch.Tensor) -> torch.Tensor:  # [B, C, F, H, W]
//           ...                                                    # -> [B, 3, F', H', W'] in [-1, 1]
//   torch.jit.script(Decoder()).save("decoder.pt")
//
// The module is loaded onto a device; latents are moved there (and cast to the dtype of
// the module's first parameter, if it has one). Every output is checked: a wrong rank or
// channel count, a batch that differs from the input's, or a non-finite value is an error
// that names the file and what was wrong, never a silent reward on garbage.
#ifndef DANCEGRPO_MODELS_TORCHSCRIPT_DECODER_H_
#define DANCEGRPO_MODELS_TORCHSCRIPT_DECODER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

class TorchScriptDecoder : public LatentDecoder {
 public:
  static absl::StatusOr<std::shared_ptr<TorchScriptDecoder>> Load(const std::string& path,
                                                                 const torch::Device& device = torch::kCPU);
  absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& latents) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Checks decoded clips: [B, 3, F, H, W] with B = `batch`, all finite. `source` names the
// decoder in the message.
absl::Status CheckDecodedClips(const torch::Tensor& clips, int64_t batch, const std::string& source);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_TORCHSCRIPT_DECODER_H_
