#include "dancegrpo/schedule.h"

#include "absl/strings/str_cat.h"

namespace dancegrpo {

absl::StatusOr<std::vector<double>> SigmaSchedule(int steps, double shift) {
  if (steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("sampling steps = ", steps, "; it must be >= 1"));
  }
  if (!(shift > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("time shift = ", shift, "; it must be > 0 (1 = no shift)"));
  }
  std::vector<double> sigmas(steps + 1);
  for (int i = 0; i <= steps; ++i) {
    // linspace(1, 0, T+1) computed as 1 - i/T, exact at both ends.
    const double t = 1.0 - static_cast<double>(i) / steps;
    sigmas[i] = shift * t / (1.0 + (shift - 1.0) * t);
  }
  sigmas[steps] = 0.0;
  return sigmas;
}

}  // namespace dancegrpo
