// The sigma schedule of rectified flow with the time shift of SD3 (ALGORITHM.md):
//   t_i = linspace(1, 0, T + 1),  sigma_i = s t_i / (1 + (s - 1) t_i),  i = 0..T.
// sigma_0 = 1 (pure noise) and sigma_T = 0 (clean sample). The model's timestep input is
// sigma_i * 1000.
#ifndef DANCEGRPO_DANCEGRPO_SCHEDULE_H_
#define DANCEGRPO_DANCEGRPO_SCHEDULE_H_

#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo {

// Fails for steps < 1 or shift <= 0, naming the bad value.
absl::StatusOr<std::vector<double>> SigmaSchedule(int steps, double shift);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_SCHEDULE_H_
