// USP (Ulysses x Ring) inside one sequence-parallel group of `sp` ranks: `ulysses`
// consecutive ranks split the attention heads with an all-to-all (Ulysses), and ring attention
// runs across the sp / ulysses stages. One rule for the model, plan and train's start line.
#ifndef DANCEGRPO_HPC_USP_H_
#define DANCEGRPO_HPC_USP_H_

#include <string>

#include "absl/status/statusor.h"

namespace dancegrpo::hpc {

// The Ulysses degree for a model with `heads` attention heads: `requested`, or for 0 the
// largest degree dividing both sp and the heads (their gcd). Fails, naming the fix, for a
// degree that does not divide sp or the heads.
absl::StatusOr<int> UlyssesDegree(int sp, int heads, int requested);

// "Ulysses 8", "ring 8" or "Ulysses 4 x ring 2"; empty for sp = 1.
std::string UspLayout(int sp, int ulysses);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_USP_H_
