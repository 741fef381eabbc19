// The one interface every collective goes through, in the manner of c10d's Backend: an
// MPI backend for CPU tensors (mpi_communicator.h), an NCCL backend for CUDA tensors
// (nccl_communicator.h, built with --config=cuda), and a size-1 LocalCommunicator for
// single-process runs and tests. One conformance suite (communicator_conformance_test)
// runs against each.
//
// Collective semantics: every rank of the communicator must call the same collectives in
// the same order with matching shapes and dtypes. Tensors must be contiguous. A collective
// that waits longer than the communicator's timeout is reported by the watchdog, naming
// the ranks that have not arrived, and the job is aborted (see mpi_communicator.h):
// a mismatched program ends with a message instead of a hang.
#ifndef DANCEGRPO_HPC_COMM_COMMUNICATOR_H_
#define DANCEGRPO_HPC_COMM_COMMUNICATOR_H_

#include <torch/types.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo::hpc {

enum class ReduceOp { kSum, kMax, kMin };

// A collective or point-to-point transfer that was started and not yet waited for.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Blocks until it has completed (under the same watchdog as the blocking calls).
  virtual absl::Status Wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // In place: every rank ends with the reduction of all ranks' `tensor`.
  virtual absl::Status AllReduce(const torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) = 0;
  // input: size() * n elements; output: n elements, the reduction of chunk rank() of all
  // ranks' inputs.
  virtual absl::Status ReduceScatter(const torch::Tensor& input, const torch::Tensor& output,
                                     ReduceOp op = ReduceOp::kSum) = 0;
  // input: n elements; output: size() * n elements, chunk i from rank i.
  virtual absl::Status AllGather(const torch::Tensor& input, const torch::Tensor& output) = 0;
  // AllGather, started without waiting (MPI: MPI_Iallgather), so that it overlaps with
  // compute (ZeRO-3 prefetches the next block this way). Every rank starts the same
  // collectives in the same order; the tensors must stay untouched until Wait. The default
  // (NCCL, local) completes it before returning.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartAllGather(const torch::Tensor& input,
                                                                          const torch::Tensor& output);
  // input and output: size() * n elements; chunk j of the input goes to rank j, chunk i
  // of the output comes from rank i.
  virtual absl::Status AllToAll(const torch::Tensor& input, const torch::Tensor& output) = 0;
  // In place from `root`.
  virtual absl::Status Broadcast(const torch::Tensor& tensor, int root) = 0;
  virtual absl::Status Barrier() = 0;

  // Started without waiting, like StartAllGather (ZeRO overlaps its gradient reduction with
  // the next block's backward this way). The default completes it before returning.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartAllReduce(const torch::Tensor& tensor,
                                                                          ReduceOp op = ReduceOp::kSum);
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartReduceScatter(const torch::Tensor& input,
                                                                              const torch::Tensor& output,
                                                                              ReduceOp op = ReduceOp::kSum);

  // Point-to-point (ring attention passes key/value blocks to its neighbour this way). Not
  // collective: only the two ranks take part. A send to `peer` matches the receive posted on
  // `peer` from this rank with the same tag, in posting order; both tensors are contiguous
  // with the same dtype and element count. A rank may send to itself (the receive must be
  // started first or the send started without waiting). Tags are >= 0; NCCL has none, so its
  // backend takes tag 0 only and matches in posting order. The tensor of a started transfer
  // stays untouched until Wait. A transfer whose peer never posts its match is reported by
  // the watchdog, naming the peer, and the job is aborted.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartSend(const torch::Tensor& tensor, int peer,
                                                                     int tag = 0) = 0;
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartRecv(const torch::Tensor& tensor, int peer,
                                                                     int tag = 0) = 0;
  absl::Status Send(const torch::Tensor& tensor, int peer, int tag = 0);
  absl::Status Recv(const torch::Tensor& tensor, int peer, int tag = 0);
  // Sends `send` to `to` and receives `recv` from `from` at once: one step of a ring, where
  // every rank sends and receives, without the deadlock of blocking sends. NCCL runs it as
  // one group.
  virtual absl::Status SendRecv(const torch::Tensor& send, int to, const torch::Tensor& recv, int from, int tag = 0);
  // One ring step of several tensors, started: send[i] goes to `to` and recv[i] comes from
  // `from` (tags tag + i; NCCL, which has no tags, matches in posting order), all without
  // waiting; Wait finishes every transfer. The default posts each receive, then each send;
  // NCCL queues them as one group (ncclGroupStart/End), the only safe way on a GPU when every
  // rank both sends and receives.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartSendRecv(const std::vector<torch::Tensor>& send,
                                                                         int to,
                                                                         const std::vector<torch::Tensor>& recv,
                                                                         int from, int tag = 0);

  // A sub-communicator of the ranks that pass the same `color`, ordered by `key`.
  // Collective over this communicator.
  virtual absl::StatusOr<std::shared_ptr<Communicator>> Split(int color, int key) = 0;

  // Seconds spent inside collectives so far (for the communication share in benchmarks).
  double seconds_in_collectives() const { return seconds_in_collectives_; }

 protected:
  double seconds_in_collectives_ = 0;
};

// A communicator of one rank: every collective is a copy or nothing.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  absl::Status AllReduce(const torch::Tensor& tensor, ReduceOp op) override;
  absl::Status ReduceScatter(const torch::Tensor& input, const torch::Tensor& output, ReduceOp op) override;
  absl::Status AllGather(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::Status AllToAll(const torch::Tensor& input, const torch::Tensor& output) override;
  absl::Status Broadcast(const torch::Tensor& tensor, int root) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::StatusOr<std::shared_ptr<Communicator>> Split(int color, int key) override;
  // Sends to itself: a send is copied into a mailbox per tag, a receive takes the oldest.
  // A receive with nothing sent fails (one rank cannot wait for itself).
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartSend(const torch::Tensor& tensor, int peer, int tag) override;
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartRecv(const torch::Tensor& tensor, int peer, int tag) override;

 private:
  std::map<int, std::deque<torch::Tensor>> mailbox_;
};

// `text` from `root` to every rank of `comm` (its length, then its bytes, as CPU tensors: a
// control message, e.g. a checksum only rank 0 computed). Collective over `comm`.
absl::Status BroadcastString(Communicator& comm, std::string& text, int root);

// Checks a point-to-point transfer's arguments: a defined contiguous tensor, a peer of a
// `size`-rank communicator, a tag >= 0.
absl::Status CheckPointToPointArgs(const char* op, const torch::Tensor& tensor, int peer, int tag, int size);

// Checks the shapes of a collective's arguments: contiguous, same dtype, the expected
// element counts. Shared by the backends so that each reports the same messages.
absl::Status CheckCollectiveArgs(const char* op, const torch::Tensor& input, const torch::Tensor& output,
                                 int64_t input_numel, int64_t output_numel);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_COMMUNICATOR_H_
