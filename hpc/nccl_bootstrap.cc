#include "hpc/nccl_bootstrap.h"

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

namespace {

std::string RanksPerNodeFix(int visible) {
  return absl::StrCat("start at most ", visible, " rank(s) per node (mpirun --map-by ppr:", visible,
                      ":node, or srun --ntasks-per-node=", visible,
                      "), or give each rank its own GPU with CUDA_VISIBLE_DEVICES");
}

}  // namespace

absl::Status CheckGpuAssignment(const std::vector<GpuSlot>& slots) {
  int failed = 0, first = -1;
  for (int r = 0; r < static_cast<int>(slots.size()); ++r)
    if (!slots[r].error.empty() && failed++ == 0) first = r;
  if (failed > 0) {
    const GpuSlot& s = slots[first];
    std::string why = absl::StrCat("rank ", first, " on host ", s.host, " could not take GPU ", s.device, ": ",
                                   s.error);
    if (s.visible < 0) {
      absl::StrAppend(&why, ". The NCCL backend needs a GPU node; on CPUs use the MPI backend");
    } else if (s.device < 0 || s.device >= s.visible) {
      absl::StrAppend(&why, " (this node shows ", s.visible, " GPU(s)); ", RanksPerNodeFix(s.visible));
    }
    if (failed > 1) absl::StrAppend(&why, " [", failed - 1, " more rank(s) failed the same way]");
    return absl::FailedPreconditionError(absl::StrCat("NCCL bootstrap: ", why));
  }
  std::map<std::pair<std::string, std::string>, int> owner;
  for (int r = 0; r < static_cast<int>(slots.size()); ++r) {
    const GpuSlot& s = slots[r];
    auto [it, fresh] = owner.emplace(std::make_pair(s.host, s.bus_id), r);
    if (!fresh) {
      return absl::FailedPreconditionError(absl::StrCat(
          "NCCL bootstrap: ranks ", it->second, " and ", r, " on host ", s.host, " both took GPU ", s.bus_id,
          " (device ", s.device, " of ", s.visible, " visible); NCCL needs one GPU per rank: ",
          RanksPerNodeFix(s.visible)));
    }
  }
  return absl::OkStatus();
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

// Takes GPU `device` and describes the result.
GpuSlot TakeGpu(int device) {
  GpuSlot slot;
  slot.device = device;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  slot.host = host;
  cudaError_t rc = cudaGetDeviceCount(&slot.visible);
  if (rc != cudaSuccess) {
    slot.visible = -1;
    slot.error = absl::StrCat("cudaGetDeviceCount failed: ", cudaGetErrorString(rc));
    return slot;
  }
  if (device < 0 || device >= slot.visible) {
    slot.error = "no such device";
    return slot;
  }
  if ((rc = cudaSetDevice(device)) != cudaSuccess) {
    slot.error = absl::StrCat("cudaSetDevice failed: ", cudaGetErrorString(rc));
    return slot;
  }
  char bus[64] = {0};
  if ((rc = cudaDeviceGetPCIBusId(bus, sizeof(bus) - 1, device)) != cudaSuccess) {
    slot.error = absl::StrCat("cudaDeviceGetPCIBusId failed: ", cudaGetErrorString(rc));
    return slot;
  }
  slot.bus_id = bus;
  return slot;
}

// Every rank's slot, by rank. Collective over `comm`.
absl::StatusOr<std::vector<GpuSlot>> GatherSlots(MPI_Comm comm, const GpuSlot& mine, int size) {
  constexpr int kBytes = 1024;
  std::string packed = absl::StrCat(mine.host, "\x1f", mine.device, "\x1f", mine.visible, "\x1f", mine.bus_id,
                                    "\x1f", mine.error);
  packed.resize(kBytes - 1);
  packed.push_back('\0');
  std::vector<char> all(static_cast<size_t>(kBytes) * size);
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Allgather(packed.data(), kBytes, MPI_BYTE, all.data(), kBytes, MPI_BYTE, comm),
                                "MPI_Allgather(GPU slots, %d bytes)", kBytes));
  std::vector<GpuSlot> slots(size);
  for (int r = 0; r < size; ++r) {
    std::vector<std::string> f = absl::StrSplit(std::string(all.data() + static_cast<size_t>(r) * kBytes), '\x1f');
    if (f.size() != 5) return absl::InternalError(absl::StrCat("NCCL bootstrap: rank ", r, " sent a bad GPU slot"));
    slots[r].host = f[0];
    slots[r].device = std::atoi(f[1].c_str());
    slots[r].visible = std::atoi(f[2].c_str());
    slots[r].bus_id = f[3];
    slots[r].error = f[4];
  }
  return slots;
}

}  // namespace

bool NcclCompiledIn() { return true; }

absl::StatusOr<NcclHandle> BootstrapNccl(MPI_Comm comm, int device) {
  int rank = 0, size = 0;
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank"));
  DGRPO_RETURN_IF_ERROR(MpiCall(MPI_Comm_size(comm, &size), "MPI_Comm_size"));
  // Every rank reaches the exchange, even one without a GPU, so a bad launch fails on
  // every rank with the same message instead of hanging the ones that succeeded.
  auto slots = GatherSlots(comm, TakeGpu(device), size);
  if (!slots.ok()) return slots.status();
  DGRPO_RETURN_IF_ERROR(CheckGpuAssignment(*slots));
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
