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

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo::hpc {

enum class ReduceOp { kSum, kMax, kMin };

// A collective that was started and not yet waited for.
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
};

// Checks the shapes of a collective's arguments: contiguous, same dtype, the expected
// element counts. Shared by the backends so that each reports the same messages.
absl::Status CheckCollectiveArgs(const char* op, const torch::Tensor& input, const torch::Tensor& output,
                                 int64_t input_numel, int64_t output_numel);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_COMMUNICATOR_H_
