// A small velocity model for low-dimensional latents: an MLP over the flattened latent,
// a sinusoidal embedding of the timestep (sigma * 1000) and the pooled text condition.
// The output layer starts at zero, so the untrained model predicts v = 0. Used by the
// algorithm tests and the toy demo; the video DiT lives in models/dit.
#ifndef DANCEGRPO_MODELS_MLP_VELOCITY_H_
#define DANCEGRPO_MODELS_MLP_VELOCITY_H_

#include <torch/nn/modules/linear.h>

#include <vector>

#include "models/velocity_model.h"

namespace dancegrpo::models {

struct MlpVelocityConfig {
  std::vector<int64_t> latent_shape;  // [C, F, H, W]
  int64_t condition_dim = 8;
  int64_t hidden = 64;
  int64_t time_embed_dim = 16;
  int64_t layers = 2;  // hidden layers
};

class MlpVelocity : public VelocityModel {
 public:
  explicit MlpVelocity(const MlpVelocityConfig& config);
  torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                         const Conditioning& condition) override;
  const MlpVelocityConfig& config() const { return config_; }

 private:
  MlpVelocityConfig config_;
  int64_t latent_numel_ = 0;
  std::vector<torch::nn::Linear> hidden_;
  torch::nn::Linear out_{nullptr};
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_MLP_VELOCITY_H_
