// Counter-based randomness. Every random draw of the algorithm is keyed by
//   (seed, stream, iteration, prompt, sample, step)
// and never by rank, so results do not depend on how many ranks run or in what order
// they work: any rank can re-create any draw with no communication. A key is hashed
// (SplitMix64 finalisers) into a 64-bit seed for one short-lived generator.
#ifndef DANCEGRPO_DANCEGRPO_RNG_H_
#define DANCEGRPO_DANCEGRPO_RNG_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace dancegrpo {

// What a draw is for; keeps the streams of different uses apart.
enum class RandomStream : uint64_t {
  kInitialNoise = 1,
  kSdeNoise = 2,
  kTimesteps = 3,
  kPrompts = 4,
  kInit = 5,
  kSdeWindow = 6,
  kProbe = 7,
};

// -1 marks a coordinate that does not apply (e.g. `sample` for noise shared by a group).
struct RandomKey {
  uint64_t seed = 0;
  RandomStream stream = RandomStream::kInit;
  int64_t iteration = -1;
  int64_t prompt = -1;
  int64_t sample = -1;
  int64_t step = -1;
};

uint64_t SplitMix64(uint64_t x);
uint64_t KeyedSeed(const RandomKey& key);

// Standard normal fp32 tensor on the CPU, the same bits for the same key and shape.
torch::Tensor KeyedNormal(const RandomKey& key, torch::IntArrayRef shape);

// A uniformly random permutation of 0..n-1 (Fisher-Yates over a SplitMix64 stream).
std::vector<int64_t> KeyedPermutation(const RandomKey& key, int64_t n);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_RNG_H_
