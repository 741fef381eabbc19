// NCCL communicator bootstrap over MPI, the Horovod way:
//   1. every rank selects its GPU from the launcher's local rank;
//   2. rank 0 of `comm` calls ncclGetUniqueId;
//   3. the id is broadcast over MPI to every rank of `comm`;
//   4. every rank calls ncclCommInitRank(size, id, rank).
// Collective: all ranks of `comm` must call BootstrapNccl together, or the job hangs in
// the broadcast (the collective watchdog of hpc/comm reports such ranks).
//
// The NCCL code is compiled only under `--config=cuda`. Without it every call returns
// Unimplemented with a message that says how to build it.
#ifndef DANCEGRPO_HPC_NCCL_BOOTSTRAP_H_
#define DANCEGRPO_HPC_NCCL_BOOTSTRAP_H_

#include <mpi.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct ncclComm;  // NCCL's opaque communicator; ncclComm_t is ncclComm*.

namespace dancegrpo::hpc {

// True when this binary was built with `--config=cuda` and links NCCL.
bool NcclCompiledIn();

// The node-local rank given by the launcher: Open MPI (OMPI_COMM_WORLD_LOCAL_RANK),
// Slurm (SLURM_LOCALID), MPICH/Hydra (MPI_LOCALRANKID), or 0 when none is set.
int LauncherLocalRank();

// What one rank found when it tried to take its GPU, exchanged before NCCL starts so
// that a bad launch gets a message naming the ranks and the fix instead of NCCL's
// "invalid usage".
struct GpuSlot {
  std::string host;    // the node's host name
  int device = -1;     // the CUDA ordinal the rank asked for
  int visible = 0;     // how many GPUs the rank can see (-1: the CUDA runtime failed)
  std::string bus_id;  // PCI bus id of the GPU taken; empty when none was taken
  std::string error;   // why the rank could not take it; empty on success
};

// Checks the slots of every rank of a communicator (index = rank): each rank took a
// GPU, and no two ranks share one GPU of one node (NCCL allows one rank per GPU).
absl::Status CheckGpuAssignment(const std::vector<GpuSlot>& slots);

struct NcclHandle {
  ncclComm* comm = nullptr;
  int device = -1;
};

// Selects GPU `device`, checks the assignment of every rank (CheckGpuAssignment) and
// creates one NCCL communicator spanning `comm`.
absl::StatusOr<NcclHandle> BootstrapNccl(MPI_Comm comm, int device);

// Destroys the communicator made by BootstrapNccl. Safe on a default handle.
void DestroyNccl(NcclHandle& handle);

// A self-check: an ncclAllReduce(sum) of each rank's id on the GPU. Returns the sum,
// which must equal n(n-1)/2. Collective over the handle's communicator.
absl::StatusOr<double> NcclAllReduceRankIds(const NcclHandle& handle, int rank);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_NCCL_BOOTSTRAP_H_
