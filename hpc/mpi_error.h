// Turns MPI return codes into absl::Status, with the call and its arguments in the
// message, so that an MPI failure deep in a collective names what was being attempted.
//
//   DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Bcast(buf, n, MPI_BYTE, 0, comm),
//                                 "MPI_Bcast(n=%d, root=0)", n));
//
// MPI's default error handler aborts the job on error; code that wants Status results
// must first call UseReturnErrorsOn(comm) (done by the project's MPI test main and
// runtime for MPI_COMM_WORLD).
#ifndef DANCEGRPO_HPC_MPI_ERROR_H_
#define DANCEGRPO_HPC_MPI_ERROR_H_

#include <mpi.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace dancegrpo::hpc {

// Returns OK for MPI_SUCCESS; otherwise an Internal error holding `call` and MPI's own
// error string.
absl::Status MpiStatus(int rc, const std::string& call);

template <typename... Args>
absl::Status MpiCall(int rc, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  return MpiStatus(rc, absl::StrFormat(format, args...));
}

// Makes MPI calls on `comm` return error codes instead of aborting.
void UseReturnErrorsOn(MPI_Comm comm);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_MPI_ERROR_H_
