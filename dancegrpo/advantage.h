// Advantages from rewards (ALGORITHM.md, Algorithm 1 line 8).
//
// Samples are ordered group-major: sample i belongs to group i / group_size. For each
// reward k and each group:  A_i^k = (r_i^k - mean_k) / (std_k + 1e-8), with std_k the
// unbiased standard deviation over the group. The advantage is A_i = sum_k w_k A_i^k,
// clamped to [-adv_clip_max, adv_clip_max]. With `global_normalization` the statistics
// are taken over all samples of the iteration instead of per group. With `pooled_std` the
// mean stays per group but std_k is the within-group standard deviation pooled over all
// groups of the iteration, sqrt(sum_i (r_i^k - mean_{g(i)})^2 / (n - groups)) (Flow-GRPO's
// global std, taken around the group means): a group whose samples barely differ gets
// advantages near 0 instead of noise blown up to unit scale.
//
// Inputs are the rewards of the whole iteration (all ranks' samples, all-gathered), so
// every rank computes the same advantages.
#ifndef DANCEGRPO_DANCEGRPO_ADVANTAGE_H_
#define DANCEGRPO_DANCEGRPO_ADVANTAGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo {

struct AdvantageConfig {
  int group_size = 1;
  std::vector<double> weights;  // one per reward; empty = all 1
  double adv_clip_max = 5.0;
  bool global_normalization = false;
  bool pooled_std = false;
  double std_epsilon = 1e-8;
};

// rewards[k][i]: reward k of sample i. Fails on mismatched sizes, non-finite rewards,
// groups that do not divide the sample count, or a group of one (its unbiased std is
// undefined), each with a message that says what to change.
absl::StatusOr<std::vector<double>> ComputeAdvantages(const std::vector<std::vector<double>>& rewards,
                                                      const AdvantageConfig& config);

// Best-of-n: within each group, keep the n/2 samples with the highest advantage and the
// n/2 with the lowest (ties broken by sample index). Returns the kept sample indices in
// increasing order. n must be even, >= 2 and <= group_size.
absl::StatusOr<std::vector<int64_t>> BestOfN(const std::vector<double>& advantages, int group_size,
                                             int n);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_ADVANTAGE_H_
