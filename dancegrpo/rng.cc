#include "dancegrpo/rng.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <utility>

namespace dancegrpo {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t KeyedSeed(const RandomKey& key) {
  uint64_t h = SplitMix64(key.seed);
  for (uint64_t v : {static_cast<uint64_t>(key.stream), static_cast<uint64_t>(key.iteration),
                     static_cast<uint64_t>(key.prompt), static_cast<uint64_t>(key.sample),
                     static_cast<uint64_t>(key.step)}) {
    h = SplitMix64(h ^ v);
  }
  return h;
}

torch::Tensor KeyedNormal(const RandomKey& key, torch::IntArrayRef shape) {
  auto gen = at::detail::createCPUGenerator(KeyedSeed(key));
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
}

std::vector<int64_t> KeyedPermutation(const RandomKey& key, int64_t n) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  uint64_t state = KeyedSeed(key);
  for (int64_t i = n - 1; i > 0; --i) {
    state = SplitMix64(state);
    // Multiply-shift maps the 64-bit draw to [0, i] without modulo bias worth noting.
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(state) * (i + 1)) >> 64);
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

}  // namespace dancegrpo
