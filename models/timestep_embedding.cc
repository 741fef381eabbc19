#include "models/timestep_embedding.h"

#include <torch/torch.h>

#include <cmath>

namespace dancegrpo::models {

torch::Tensor TimestepEmbedding(const torch::Tensor& t, int64_t dim) {
  TORCH_CHECK(dim % 2 == 0, "timestep embedding dim must be even, got ", dim);
  const int64_t half = dim / 2;
  auto freqs = torch::exp(-std::log(10000.0) * torch::arange(half, t.options().dtype(torch::kFloat32)) / half);
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

}  // namespace dancegrpo::models
