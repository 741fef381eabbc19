// Every decoded clip's frame count, checked. A video VAE maps F latent frames to a fixed
// function of F: 1 + s (F - 1) for a causal one (Wan: s = 4, so 4F - 3), s F otherwise. A
// decoder exported with torch.jit.trace pins the frame count it was traced with: Wan's VAE
// traced at 3 latent frames returns 9 video frames for 5 (not 17) without any error, and the
// rewards would score the wrong clips. So the rule is declared by a native decoder, or inferred
// at start-up from two probes (F and F + 1 latent frames: the stride is the difference), and
// FrameCheckedDecoder refuses any clip that breaks it.
#ifndef DANCEGRPO_MODELS_DECODER_FRAMES_H_
#define DANCEGRPO_MODELS_DECODER_FRAMES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

struct FrameRule {
  int64_t stride = 1;
  bool causal = true;  // 1 + stride (F - 1); else stride F
  int64_t Frames(int64_t latent_frames) const {
    return causal ? 1 + stride * (latent_frames - 1) : stride * latent_frames;
  }
  std::string ToString() const;  // "1 + 4 (F - 1)"
};

// Probes `decoder` with zeros [1, C, F, H, W] and [1, C, F + 1, H, W] (latent_shape = C, F, H, W)
// and returns the rule both outputs follow; an error, naming `source` and the frame counts, when
// the count does not grow with F (a traced decoder), a probe fails, or no rule fits.
absl::StatusOr<FrameRule> InferFrameRule(LatentDecoder& decoder, const std::vector<int64_t>& latent_shape,
                                         const std::string& source);

// Decodes with `inner` and checks each output's frame count against `rule`.
class FrameCheckedDecoder : public LatentDecoder {
 public:
  FrameCheckedDecoder(std::shared_ptr<LatentDecoder> inner, FrameRule rule, std::string source)
      : inner_(std::move(inner)), rule_(rule), source_(std::move(source)) {}
  absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& latents) override;
  const FrameRule& rule() const { return rule_; }
  LatentDecoder* inner() const { return inner_.get(); }
  const std::string& source() const { return source_; }

 private:
  std::shared_ptr<LatentDecoder> inner_;
  FrameRule rule_;
  std::string source_;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DECODER_FRAMES_H_
