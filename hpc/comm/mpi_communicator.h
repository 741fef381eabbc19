// The MPI backend of Communicator, for CPU tensors, with a collective watchdog.
//
// Every collective is posted as a non-blocking MPI call and polled to completion. The
// watchdog: on entering its k-th collective, each rank announces k with a small message
// to the communicator's monitor ranks (0 and 1) on a private duplicate communicator, so
// the monitors always know how far every rank has come. A collective that is not done
// after `timeout_seconds`:
//   - on a monitor, prints which ranks have not arrived at collective k (and the last
//     collective each of them entered), then aborts the job (MPI_Abort, exit code 3);
//   - on any other rank, waits a short grace period for a monitor to report, then prints
//     its own view and aborts.
// So a rank that skips or never reaches a collective ends the job with a message naming
// it, instead of a hang. The announcements cost two tiny messages per rank per collective.
#ifndef DANCEGRPO_HPC_COMM_MPI_COMMUNICATOR_H_
#define DANCEGRPO_HPC_COMM_MPI_COMMUNICATOR_H_

#include <mpi.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

struct WatchdogOptions {
  double timeout_seconds = 600;  // 0 disables the watchdog
};

class MpiCommunicator : public Communicator {
 public:
  // Duplicates `comm`; the duplicates are freed with this object. Collective over `comm`.
  static absl::StatusOr<std::shared_ptr<MpiCommunicator>> Create(MPI_Comm comm, WatchdogOptions options = {});
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  MPI_Comm comm() const { return comm_; }
  // World rank of each rank of this communicator.
  const std::vector<int>& world_ranks() const { return world_ranks_; }

  absl::Status AllReduce(const torch::Tensor& tensor, ReduceOp op) override;
  absl::Status ReduceScatter(const torch::Tensor& input, const torch::Tensor& output, ReduceOp op) override;
  absl::Status AllGather(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartAllGather(const torch::Tensor& input,
                                                                    const torch::Tensor& output) override;
  absl::Status AllToAll(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::Status Broadcast(const torch::Tensor& tensor, int root) override;
  absl::Status Barrier() override;
  absl::StatusOr<std::shared_ptr<Communicator>> Split(int color, int key) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartAllReduce(const torch::Tensor& tensor, ReduceOp op) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartReduceScatter(const torch::Tensor& input,
                                                                        const torch::Tensor& output,
                                                                        ReduceOp op) override;
  // MPI_Isend / MPI_Irecv on the communicator; waited under the watchdog's timeout, which
  // names the peer (point-to-point transfers are not announced to the monitors).
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartSend(const torch::Tensor& tensor, int peer, int tag) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartRecv(const torch::Tensor& tensor, int peer, int tag) override;

  // The ranks of `comm` on this rank's node (MPI_COMM_TYPE_SHARED), e.g. to divide a node's
  // cores or memory between them. Collective over `comm`.
  static absl::StatusOr<int> RanksOnThisNode(MPI_Comm comm);

 private:
  MpiCommunicator() = default;
  // Announces the next collective to the monitors and returns its sequence number.
  int64_t Enter();
  // Polls `request` to completion under the watchdog.
  absl::Status Wait(MPI_Request* request, int rc, const std::string& what);
  void DrainArrivals();
  // Polls a point-to-point `request` to completion; past the timeout, names the peer and
  // aborts the job.
  absl::Status WaitPeer(MPI_Request* request, const std::string& what);
  // MPI_Isend (send) or MPI_Irecv of `tensor` with `peer`, checked and described once.
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartPointToPoint(bool send, const torch::Tensor& tensor, int peer,
                                                                       int tag);
  [[noreturn]] void ReportAndAbort(int64_t seq, const std::string& what, double waited);
  bool is_monitor() const { return rank_ < 2; }

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm watch_comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::vector<int> world_ranks_;
  WatchdogOptions options_;
  int64_t seq_ = 0;
  std::vector<int64_t> last_seen_;  // on monitors: the last collective each rank entered
  struct PendingSend {
    std::unique_ptr<int64_t> value;
    MPI_Request request;
  };
  std::deque<PendingSend> sends_;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_MPI_COMMUNICATOR_H_
