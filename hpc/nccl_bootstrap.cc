#include "hpc/nccl_bootstrap.h"

#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "hpc/mpi_error.h"
#include "hpc/status_macros.h"

#ifdef DANCEGRPO_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace dancegrpo::hpc {

int LauncherLocalRank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    const char* value = std::getenv(var);
    if (value != nullptr && *value != '\0') return std::atoi(value);
  }
  return 0;
}

#ifdef DANCEGRPO_WITH_NCCL

namespace {

absl::Status CudaCall(cudaError_t rc, const std::string& call) {
  if (rc == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, " failed: ", cudaGetErrorString(rc)));
}

absl::Status NcclCall(ncclResult_t rc, const std::string& call) {
  if (rc == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, " failed: ", ncclGetErrorString(rc)));
}

}  // namespace

bool NcclCompiledIn() { return true; }

absl::StatusOr<NcclHandle> BootstrapNccl(MPI_Comm comm, int device) {
  int rank = 0, size = 0;
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank"));
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Comm_size(comm, &size), "MPI_Comm_size"));
  DGRPO_RETURN_IF_ERROR(CudaCall(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")")));
  ncclUniqueId id;
  // Only rank 0 may create the id: every rank must join the same clique.
  if (rank == 0) DGRPO_RETURN_IF_ERROR(NcclCall(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm),
                                "MPI_Bcast(ncclUniqueId, %d bytes, root=0)", int(sizeof(id))));
  NcclHandle handle;
  handle.device = device;
  DGRPO_RETURN_IF_ERROR(NcclCall(ncclCommInitRank(&handle.comm, size, id, rank),
                                 absl::StrCat("ncclCommInitRank(size=", size, ", rank=", rank, ")")));
  return handle;
}

void DestroyNccl(NcclHandle& handle) {
  if (handle.comm != nullptr) ncclCommDestroy(handle.comm);
  handle.comm = nullptr;
}

absl::StatusOr<double> NcclAllReduceRankIds(const NcclHandle& handle, int rank) {
  double* buffer = nullptr;
  DGRPO_RETURN_IF_ERROR(CudaCall(cudaMalloc(&buffer, sizeof(double)), "cudaMalloc"));
  const double value = rank;
  double sum = -1;
  absl::Status status = CudaCall(cudaMemcpy(buffer, &value, sizeof(double), cudaMemcpyHostToDevice),
                                 "cudaMemcpy(H2D)");
  if (status.ok())
    status = NcclCall(ncclAllReduce(buffer, buffer, 1, ncclDouble, ncclSum, handle.comm, nullptr),
                      "ncclAllReduce(1 double, sum)");
  if (status.ok()) status = CudaCall(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize");
  if (status.ok())
    status = CudaCall(cudaMemcpy(&sum, buffer, sizeof(double), cudaMemcpyDeviceToHost),
                      "cudaMemcpy(D2H)");
  cudaFree(buffer);
  if (!status.ok()) return status;
  return sum;
}

#else  // !DANCEGRPO_WITH_NCCL

namespace {
absl::Status NotBuilt() {
  return absl::UnimplementedError(
      "this binary was built without NCCL; rebuild with `bazel build --config=cuda` "
      "(CUDA_HOME/NCCL_HOME locate the toolkit)");
}
}  // namespace

bool NcclCompiledIn() { return false; }
absl::StatusOr<NcclHandle> BootstrapNccl(MPI_Comm, int) { return NotBuilt(); }
void DestroyNccl(NcclHandle& handle) { handle.comm = nullptr; }
absl::StatusOr<double> NcclAllReduceRankIds(const NcclHandle&, int) { return NotBuilt(); }

#endif  // DANCEGRPO_WITH_NCCL

}  // namespace dancegrpo::hpc
