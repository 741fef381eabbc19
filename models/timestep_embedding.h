// Sinusoidal embedding of diffusion timesteps (sigma * 1000), as in Wan/DiT:
// [cos(t w_0..w_{h-1}), sin(t w_0..w_{h-1})] with w_i = 10000^(-i / h), h = dim / 2.
#ifndef DANCEGRPO_MODELS_TIMESTEP_EMBEDDING_H_
#define DANCEGRPO_MODELS_TIMESTEP_EMBEDDING_H_

#include <torch/types.h>

namespace dancegrpo::models {

// t: [B] -> [B, dim]; dim must be even.
torch::Tensor TimestepEmbedding(const torch::Tensor& t, int64_t dim);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_TIMESTEP_EMBEDDING_H_
