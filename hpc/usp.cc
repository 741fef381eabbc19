#include "hpc/usp.h"

#include <numeric>

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {

absl::StatusOr<int> UlyssesDegree(int sp, int heads, int requested) {
  const int best = std::gcd(sp, heads);
  if (requested == 0) return best;
  if (requested < 0 || sp % requested != 0)
    return absl::InvalidArgumentError(absl::StrCat("--ulysses=", requested, " does not divide sp = ", sp,
                                                   "; use a divisor of sp (the ring degree is sp / ulysses), or 0 ",
                                                   "for the largest that divides sp and the heads (", best, ")"));
  if (heads % requested != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "--ulysses=", requested, " does not divide the ", heads, " attention heads (Ulysses splits the heads over its ",
        "ranks); use --ulysses=", best, ", the largest that divides sp = ", sp,
        " and the heads: ring attention covers the rest (ring degree ", sp / best, ")"));
  return requested;
}

std::string UspLayout(int sp, int ulysses) {
  if (sp <= 1) return "";
  if (ulysses == sp) return absl::StrCat("Ulysses ", sp);
  if (ulysses == 1) return absl::StrCat("ring ", sp);
  return absl::StrCat("Ulysses ", ulysses, " x ring ", sp / ulysses);
}

}  // namespace dancegrpo::hpc
