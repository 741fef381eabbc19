#include "hpc/mpi_error.h"

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {

absl::Status MpiStatus(int rc, const std::string& call) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  return absl::InternalError(
      absl::StrCat(call, " failed with MPI error ", rc, ": ", std::string(text, len)));
}

void UseReturnErrorsOn(MPI_Comm comm) { MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN); }

}  // namespace dancegrpo::hpc
