// Status propagation macros. Debian's Abseil (20220623) ships no RETURN_IF_ERROR, so
// the project keeps its own two, with the usual semantics:
//   DGRPO_RETURN_IF_ERROR(expr)      returns the absl::Status of `expr` if it is not OK.
//   DGRPO_ASSIGN_OR_RETURN(lhs, expr) unwraps an absl::StatusOr<T> into `lhs`, or returns
//                                     its error status.
#ifndef DANCEGRPO_HPC_STATUS_MACROS_H_
#define DANCEGRPO_HPC_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DGRPO_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    const ::absl::Status dgrpo_status_ = (expr);     \
    if (!dgrpo_status_.ok()) return dgrpo_status_;   \
  } while (0)

#define DGRPO_STATUS_CONCAT_INNER_(a, b) a##b
#define DGRPO_STATUS_CONCAT_(a, b) DGRPO_STATUS_CONCAT_INNER_(a, b)

#define DGRPO_ASSIGN_OR_RETURN(lhs, expr) \
  DGRPO_ASSIGN_OR_RETURN_IMPL_(DGRPO_STATUS_CONCAT_(dgrpo_statusor_, __LINE__), lhs, expr)

#define DGRPO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // DANCEGRPO_HPC_STATUS_MACROS_H_
