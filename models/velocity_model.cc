#include "models/velocity_model.h"

#include <torch/torch.h>

namespace dancegrpo::models {

Conditioning Conditioning::Rows(const torch::Tensor& index) const {
  Conditioning out;
  if (pooled.defined()) out.pooled = pooled.index_select(0, index);
  if (tokens.defined()) out.tokens = tokens.index_select(0, index);
  if (token_mask.defined()) out.token_mask = token_mask.index_select(0, index);
  return out;
}

Conditioning Conditioning::Cat(const std::vector<Conditioning>& parts) {
  Conditioning out;
  if (parts.empty()) return out;
  auto gather = [&](auto field) {
    std::vector<torch::Tensor> ts;
    for (const auto& p : parts) {
      if (!(p.*field).defined()) return torch::Tensor();
      ts.push_back(p.*field);
    }
    return torch::cat(ts, 0);
  };
  out.pooled = gather(&Conditioning::pooled);
  out.tokens = gather(&Conditioning::tokens);
  out.token_mask = gather(&Conditioning::token_mask);
  return out;
}

Conditioning Conditioning::To(const torch::Device& device) const {
  Conditioning out;
  if (pooled.defined()) out.pooled = pooled.to(device);
  if (tokens.defined()) out.tokens = tokens.to(device);
  if (token_mask.defined()) out.token_mask = token_mask.to(device);
  return out;
}

}  // namespace dancegrpo::models
