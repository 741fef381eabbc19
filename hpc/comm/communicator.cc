#include "hpc/comm/communicator.h"

#include <torch/torch.h>

#include <cstring>

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

absl::Status CheckPointToPointArgs(const char* op, const torch::Tensor& tensor, int peer, int tag, int size) {
  if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(op, ": undefined tensor"));
  if (!tensor.is_contiguous()) return absl::InvalidArgumentError(absl::StrCat(op, ": the tensor must be contiguous"));
  if (peer < 0 || peer >= size)
    return absl::InvalidArgumentError(absl::StrCat(op, ": peer ", peer, " is not a rank of this ", size,
                                                   "-rank communicator"));
  if (tag < 0) return absl::InvalidArgumentError(absl::StrCat(op, ": tag ", tag, " is negative"));
  return absl::OkStatus();
}

absl::Status BroadcastString(Communicator& comm, std::string& text, int root) {
  auto length = torch::tensor({static_cast<int64_t>(text.size())}, torch::kInt64);
  if (auto s = comm.Broadcast(length, root); !s.ok()) return s;
  auto bytes = torch::zeros({length.item<int64_t>()}, torch::kUInt8);
  if (comm.rank() == root && !text.empty()) std::memcpy(bytes.data_ptr(), text.data(), text.size());
  if (bytes.numel() > 0) {
    if (auto s = comm.Broadcast(bytes, root); !s.ok()) return s;
  }
  text.assign(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
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

absl::StatusOr<std::unique_ptr<PendingCollective>> Communicator::StartAllReduce(const torch::Tensor& tensor,
                                                                               ReduceOp op) {
  if (auto s = AllReduce(tensor, op); !s.ok()) return s;
  return std::unique_ptr<PendingCollective>(new Completed());
}

absl::StatusOr<std::unique_ptr<PendingCollective>> Communicator::StartReduceScatter(const torch::Tensor& input,
                                                                                   const torch::Tensor& output,
                                                                                   ReduceOp op) {
  if (auto s = ReduceScatter(input, output, op); !s.ok()) return s;
  return std::unique_ptr<PendingCollective>(new Completed());
}

absl::Status Communicator::Send(const torch::Tensor& tensor, int peer, int tag) {
  auto started = StartSend(tensor, peer, tag);
  if (!started.ok()) return started.status();
  return (*started)->Wait();
}

absl::Status Communicator::Recv(const torch::Tensor& tensor, int peer, int tag) {
  auto started = StartRecv(tensor, peer, tag);
  if (!started.ok()) return started.status();
  return (*started)->Wait();
}

absl::Status Communicator::SendRecv(const torch::Tensor& send, int to, const torch::Tensor& recv, int from, int tag) {
  if (send.defined() && recv.defined() && send.numel() == recv.numel() && send.data_ptr() == recv.data_ptr())
    return absl::InvalidArgumentError("SendRecv: the send and receive tensors share memory; receive into another");
  // The receive first, so that a send to oneself finds it posted.
  auto r = StartRecv(recv, from, tag);
  if (!r.ok()) return r.status();
  auto s = StartSend(send, to, tag);
  if (!s.ok()) return s.status();
  if (auto done = (*s)->Wait(); !done.ok()) return done;
  return (*r)->Wait();
}

namespace {
// Several started transfers finished together, in the order started.
class AllOf : public PendingCollective {
 public:
  explicit AllOf(std::vector<std::unique_ptr<PendingCollective>> parts) : parts_(std::move(parts)) {}
  absl::Status Wait() override {
    absl::Status first;
    for (auto& p : parts_) {
      auto s = p->Wait();
      if (first.ok() && !s.ok()) first = s;
    }
    parts_.clear();
    return first;
  }

 private:
  std::vector<std::unique_ptr<PendingCollective>> parts_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> Communicator::StartSendRecv(const std::vector<torch::Tensor>& send,
                                                                             int to,
                                                                             const std::vector<torch::Tensor>& recv,
                                                                             int from, int tag) {
  if (send.size() != recv.size())
    return absl::InvalidArgumentError(absl::StrCat("StartSendRecv: ", send.size(), " tensors to send, ", recv.size(),
                                                   " to receive; give one receive per send"));
  std::vector<std::unique_ptr<PendingCollective>> parts;
  for (size_t i = 0; i < recv.size(); ++i) {  // the receives first: a send to oneself finds them posted
    auto r = StartRecv(recv[i], from, tag + static_cast<int>(i));
    if (!r.ok()) return r.status();
    parts.push_back(*std::move(r));
  }
  for (size_t i = 0; i < send.size(); ++i) {
    auto s = StartSend(send[i], to, tag + static_cast<int>(i));
    if (!s.ok()) return s.status();
    parts.push_back(*std::move(s));
  }
  return std::unique_ptr<PendingCollective>(new AllOf(std::move(parts)));
}

namespace {
// A receive from oneself, completed at Wait from the mailbox.
class LocalRecv : public PendingCollective {
 public:
  LocalRecv(torch::Tensor into, std::deque<torch::Tensor>* box, int tag) : into_(std::move(into)), box_(box), tag_(tag) {}
  absl::Status Wait() override {
    if (done_) return absl::OkStatus();
    if (box_->empty())
      return absl::FailedPreconditionError(absl::StrCat("Recv from rank 0 (tag ", tag_, ") of a 1-rank communicator: "
                                                        "nothing was sent; send before waiting for the receive"));
    torch::Tensor sent = std::move(box_->front());
    box_->pop_front();
    done_ = true;
    if (sent.numel() != into_.numel() || sent.scalar_type() != into_.scalar_type())
      return absl::InvalidArgumentError(absl::StrCat("Recv: ", into_.numel(), " ", c10::toString(into_.scalar_type()),
                                                     " elements expected, ", sent.numel(), " ",
                                                     c10::toString(sent.scalar_type()), " sent"));
    torch::NoGradGuard ng;
    into_.view(-1).copy_(sent.view(-1));
    return absl::OkStatus();
  }

 private:
  torch::Tensor into_;
  std::deque<torch::Tensor>* box_;
  int tag_;
  bool done_ = false;
};
}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> LocalCommunicator::StartSend(const torch::Tensor& tensor, int peer,
                                                                               int tag) {
  if (auto s = CheckPointToPointArgs("Send", tensor, peer, tag, 1); !s.ok()) return s;
  mailbox_[tag].push_back(tensor.detach().clone());
  return std::unique_ptr<PendingCollective>(new Completed());
}

absl::StatusOr<std::unique_ptr<PendingCollective>> LocalCommunicator::StartRecv(const torch::Tensor& tensor, int peer,
                                                                               int tag) {
  if (auto s = CheckPointToPointArgs("Recv", tensor, peer, tag, 1); !s.ok()) return s;
  return std::unique_ptr<PendingCollective>(new LocalRecv(tensor, &mailbox_[tag], tag));
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
