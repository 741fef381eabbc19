// The NCCL backend of Communicator, for CUDA tensors (built with --config=cuda; without it
// Create returns Unimplemented). Its collectives also take CPU tensors, the data plane's small
// control messages (a layout check's counts, a failure flag), through a copy on this rank's
// GPU; point-to-point transfers take CUDA tensors only.
//
// Bootstrap (the Horovod way, hpc/nccl_bootstrap.h): each rank selects the GPU given by the
// launcher's local rank, rank 0 creates the ncclUniqueId, MPI broadcasts it, every rank
// calls ncclCommInitRank. Collectives run on a dedicated blocking CUDA stream, which is
// ordered after the work libtorch queued on the legacy default stream; each call returns
// once its collective has completed on the GPU, polled under the watchdog timeout. On a
// timeout the NCCL communicator is aborted (ncclCommAbort) and the job ends via MPI_Abort
// with a message naming the collective and this rank. AllToAll is grouped
// ncclSend/ncclRecv. Split builds a new NCCL communicator over the split MPI communicator.
#ifndef DANCEGRPO_HPC_COMM_NCCL_COMMUNICATOR_H_
#define DANCEGRPO_HPC_COMM_NCCL_COMMUNICATOR_H_

#include <memory>
#include <string>

#include "hpc/comm/communicator.h"
#include "hpc/comm/mpi_communicator.h"
#include "hpc/nccl_bootstrap.h"

namespace dancegrpo::hpc {

class NcclCommunicator : public Communicator {
 public:
  // Collective over `mpi`. `device` < 0 takes the launcher's local rank.
  static absl::StatusOr<std::shared_ptr<NcclCommunicator>> Create(std::shared_ptr<MpiCommunicator> mpi,
                                                                  int device = -1);
  ~NcclCommunicator() override;

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  std::string backend() const override { return "nccl"; }
  int device() const { return handle_.device; }

  absl::Status AllReduce(const torch::Tensor& tensor, ReduceOp op) override;
  absl::Status ReduceScatter(const torch::Tensor& input, const torch::Tensor& output, ReduceOp op) override;
  absl::Status AllGather(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::Status AllToAll(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::Status Broadcast(const torch::Tensor& tensor, int root) override;
  absl::Status Barrier() override;
  absl::StatusOr<std::shared_ptr<Communicator>> Split(int color, int key) override;
  // ncclSend / ncclRecv, queued on the stream at once and waited for at Wait. Only tag 0
  // (NCCL has no tags). A send and a receive started apart on two ranks that both send
  // first deadlock on the GPU (each stream runs its send before its receive): a ring step
  // must be SendRecv, which groups them.
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartSend(const torch::Tensor& tensor, int peer, int tag) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartRecv(const torch::Tensor& tensor, int peer, int tag) override;
  absl::Status SendRecv(const torch::Tensor& send, int to, const torch::Tensor& recv, int from, int tag) override;
  // Every send and receive in one ncclGroupStart/End on the stream, waited for at Wait.
  // Tags are ignored: NCCL matches in posting order, which is the same on every rank.
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartSendRecv(const std::vector<torch::Tensor>& send, int to,
                                                                 const std::vector<torch::Tensor>& recv, int from,
                                                                 int tag) override;

 private:
  NcclCommunicator() = default;
  absl::Status Finish(const std::string& what);  // waits for the stream under the watchdog
  // ncclSend (send) or ncclRecv of `tensor` with `peer` on the stream, checked once.
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartPointToPoint(bool send, const torch::Tensor& tensor, int peer,
                                                                       int tag);

  std::shared_ptr<MpiCommunicator> mpi_;
  NcclHandle handle_;
  void* stream_ = nullptr;  // cudaStream_t
  void* event_ = nullptr;   // cudaEvent_t
  double timeout_seconds_ = 600;
  int64_t seq_ = 0;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_NCCL_COMMUNICATOR_H_
