#include "models/mlp_velocity.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "glog/logging.h"
#include "models/timestep_embedding.h"

namespace dancegrpo::models {

MlpVelocity::MlpVelocity(const MlpVelocityConfig& config) : config_(config) {
  CHECK_EQ(config.latent_shape.size(), 4u) << "latent_shape is [C, F, H, W]";
  latent_numel_ = 1;
  for (int64_t d : config.latent_shape) latent_numel_ *= d;
  int64_t in = latent_numel_ + config.time_embed_dim + config.condition_dim;
  for (int64_t i = 0; i < config.layers; ++i) {
    hidden_.push_back(register_module("hidden" + std::to_string(i),
                                      torch::nn::Linear(in, config.hidden)));
    in = config.hidden;
  }
  out_ = register_module("out", torch::nn::Linear(in, latent_numel_));
  torch::NoGradGuard no_grad;
  out_->weight.zero_();
  out_->bias.zero_();
}

torch::Tensor MlpVelocity::Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                                    const Conditioning& condition) {
  const int64_t b = x.size(0);
  auto h = torch::cat({x.reshape({b, latent_numel_}),
                       TimestepEmbedding(sigma * 1000.0, config_.time_embed_dim),
                       condition.pooled.to(x.dtype())},
                      1);
  for (auto& layer : hidden_) h = torch::silu(layer->forward(h));
  return out_->forward(h).reshape(x.sizes());
}

}  // namespace dancegrpo::models
