#include "dancegrpo/advantage.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace dancegrpo {

absl::StatusOr<std::vector<double>> ComputeAdvantages(const std::vector<std::vector<double>>& rewards,
                                                      const AdvantageConfig& config) {
  if (rewards.empty()) return absl::InvalidArgumentError("no rewards given");
  const size_t n = rewards[0].size();
  if (n == 0) return absl::InvalidArgumentError("no samples given");
  if (!config.weights.empty() && config.weights.size() != rewards.size()) {
    return absl::InvalidArgumentError(absl::StrCat(config.weights.size(), " reward weights for ",
                                                   rewards.size(), " rewards; give one weight per reward"));
  }
  const size_t group = config.global_normalization ? n : static_cast<size_t>(config.group_size);
  if (group < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "normalisation group of ", group, " sample(s): the unbiased std needs at least 2; ",
        "raise the group size (samples per prompt) or use global normalisation"));
  }
  if (n % group != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " samples do not split into groups of ", group, "; make the sample count a multiple"));
  }
  std::vector<double> adv(n, 0.0);
  for (size_t k = 0; k < rewards.size(); ++k) {
    const auto& r = rewards[k];
    if (r.size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("reward ", k, " has ", r.size(), " scores, reward 0 has ", n));
    }
    const double w = config.weights.empty() ? 1.0 : config.weights[k];
    std::vector<double> centred(n), group_std(n / group);
    for (size_t g0 = 0; g0 < n; g0 += group) {
      double mean = 0;
      for (size_t i = g0; i < g0 + group; ++i) {
        if (!std::isfinite(r[i])) {
          return absl::InvalidArgumentError(
              absl::StrCat("reward ", k, " of sample ", i, " is ", r[i], "; rewards must be finite"));
        }
        mean += r[i];
      }
      mean /= group;
      double ss = 0;
      for (size_t i = g0; i < g0 + group; ++i) {
        centred[i] = r[i] - mean;
        ss += centred[i] * centred[i];
      }
      group_std[g0 / group] = std::sqrt(ss / (group - 1));
    }
    if (config.pooled_std) {
      double ss = 0;
      for (double c : centred) ss += c * c;
      const double pooled = std::sqrt(ss / (n - group_std.size()));
      std::fill(group_std.begin(), group_std.end(), pooled);
    }
    for (size_t i = 0; i < n; ++i) adv[i] += w * centred[i] / (group_std[i / group] + config.std_epsilon);
  }
  for (double& a : adv) a = std::clamp(a, -config.adv_clip_max, config.adv_clip_max);
  return adv;
}

absl::StatusOr<std::vector<int64_t>> BestOfN(const std::vector<double>& advantages, int group_size,
                                             int n) {
  if (n < 2 || n % 2 != 0 || n > group_size) {
    return absl::InvalidArgumentError(absl::StrCat("best-of-n with n = ", n, " and group size ", group_size,
                                                   "; n must be even, >= 2 and <= the group size"));
  }
  if (group_size <= 0 || advantages.size() % group_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(advantages.size(), " advantages do not split into groups of ", group_size));
  }
  std::vector<int64_t> kept;
  for (size_t g0 = 0; g0 < advantages.size(); g0 += group_size) {
    std::vector<int64_t> idx(group_size);
    std::iota(idx.begin(), idx.end(), static_cast<int64_t>(g0));
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int64_t a, int64_t b) { return advantages[a] > advantages[b]; });
    kept.insert(kept.end(), idx.begin(), idx.begin() + n / 2);
    kept.insert(kept.end(), idx.end() - n / 2, idx.end());
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace dancegrpo
