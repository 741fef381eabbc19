#include "hpc/comm/communicator.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {

absl::Status CheckCollectiveArgs(const char* op, const torch::Tensor& input, const torch::Tensor& output,
                                 int64_t input_numel, int64_t output_numel) {
  if (!input.defined() || !output.defined())
    return absl::InvalidArgumentError(absl::StrCat(op, ": undefined tensor"));
  if (!input.is_contiguous() || !output.is_contiguous())
    return absl::InvalidArgumentError(absl::StrCat(op, ": tensors must be contiguous"));
  if (input.scalar_type() != output.scalar_type())
    return absl::InvalidArgumentError(absl::StrCat(op, ": input is ", c10::toString(input.scalar_type()),
                                                   " but output is ", c10::toString(output.scalar_type())));
  if (input.numel() != input_numel || output.numel() != output_numel)
    return absl::InvalidArgumentError(absl::StrCat(op, ": expected ", input_numel, " input and ", output_numel,
                                                   " output elements, got ", input.numel(), " and ",
                                                   output.numel()));
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllReduce(const torch::Tensor&, ReduceOp) { return absl::OkStatus(); }

absl::Status LocalCommunicator::ReduceScatter(const torch::Tensor& input, const torch::Tensor& output, ReduceOp) {
  auto s = CheckCollectiveArgs("ReduceScatter", input, output, output.numel(), input.numel());
  if (!s.ok()) return s;
  torch::NoGradGuard ng;
  output.view(-1).copy_(input.view(-1));
  return absl::OkStatus();
}

namespace {
class Completed : public PendingCollective {
 public:
  absl::Status Wait() override { return absl::OkStatus(); }
};
}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> Communicator::StartAllGather(const torch::Tensor& input,
                                                                               const torch::Tensor& output) {
  if (auto s = AllGather(input, output); !s.ok()) return s;
  return std::unique_ptr<PendingCollective>(new Completed());
}

absl::Status LocalCommunicator::AllGather(const torch::Tensor& input, const torch::Tensor& output) {
  auto s = CheckCollectiveArgs("AllGather", input, output, output.numel(), input.numel());
  if (!s.ok()) return s;
  torch::NoGradGuard ng;
  output.view(-1).copy_(input.view(-1));
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllToAll(const torch::Tensor& input, const torch::Tensor& output) {
  return AllGather(input, output);
}

absl::Status LocalCommunicator::Broadcast(const torch::Tensor&, int root) {
  if (root != 0) return absl::InvalidArgumentError(absl::StrCat("Broadcast root ", root, " of a 1-rank communicator"));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Communicator>> LocalCommunicator::Split(int, int) {
  return std::shared_ptr<Communicator>(std::make_shared<LocalCommunicator>());
}

}  // namespace dancegrpo::hpc
