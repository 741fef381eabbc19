#include "hpc/comm/nccl_communicator.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

#ifdef DANCEGRPO_WITH_NCCL
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <functional>
#endif

namespace dancegrpo::hpc {

#ifdef DANCEGRPO_WITH_NCCL

namespace {

absl::Status Nccl(ncclResult_t rc, const std::string& call) {
  if (rc == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, " failed: ", ncclGetErrorString(rc)));
}

absl::Status Cuda(cudaError_t rc, const std::string& call) {
  if (rc == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, " failed: ", cudaGetErrorString(rc)));
}

absl::StatusOr<ncclDataType_t> NcclType(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kFloat16: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    default:
      return absl::InvalidArgumentError(absl::StrCat("the NCCL backend cannot move ", c10::toString(t.scalar_type())));
  }
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
    default: return ncclSum;
  }
}

absl::Status CheckCuda(const torch::Tensor& t, const char* op) {
  if (!t.is_cuda())
    return absl::InvalidArgumentError(absl::StrCat(op, ": the NCCL backend takes CUDA tensors; use the MPI backend ",
                                                   "for CPU tensors"));
  return absl::OkStatus();
}

// Collectives also take CPU tensors: the small control messages of the data plane (a layout
// check's counts, a failure flag, a gradient norm) travel through a copy on this GPU and come
// back. Point-to-point transfers, which complete later, still take CUDA tensors only.
bool Staged(const torch::Tensor& a, const torch::Tensor& b) { return !a.is_cuda() || !b.is_cuda(); }
torch::Tensor OnGpu(const torch::Tensor& t, int device) { return t.to(torch::Device(torch::kCUDA, device)); }

}  // namespace

absl::StatusOr<std::shared_ptr<NcclCommunicator>> NcclCommunicator::Create(std::shared_ptr<MpiCommunicator> mpi,
                                                                           int device) {
  std::shared_ptr<NcclCommunicator> c(new NcclCommunicator());
  c->mpi_ = std::move(mpi);
  auto handle = BootstrapNccl(c->mpi_->comm(), device >= 0 ? device : LauncherLocalRank());
  if (!handle.ok()) return handle.status();
  c->handle_ = *handle;
  cudaStream_t stream;
  // A blocking stream: ordered after libtorch's work on the legacy default stream.
  if (auto s = Cuda(cudaStreamCreate(&stream), "cudaStreamCreate"); !s.ok()) return s;
  cudaEvent_t event;
  if (auto s = Cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate"); !s.ok()) return s;
  c->stream_ = stream;
  c->event_ = event;
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  DestroyNccl(handle_);
}

absl::Status NcclCommunicator::Finish(const std::string& what) {
  const int64_t seq = ++seq_;
  auto stream = static_cast<cudaStream_t>(stream_);
  auto event = static_cast<cudaEvent_t>(event_);
  if (auto s = Cuda(cudaEventRecord(event, stream), "cudaEventRecord"); !s.ok()) return s;
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const cudaError_t q = cudaEventQuery(event);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) return Cuda(q, what);
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(handle_.comm, &async);
    if (async != ncclSuccess) return Nccl(async, what);
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_seconds_ > 0 && waited > timeout_seconds_) {
      std::fprintf(stderr,
                   "DanceGRPO watchdog: NCCL collective #%ld (%s) has not completed after %.0f s on rank %d (GPU %d); "
                   "a peer skipped it, is stuck before it, or died. Aborting the job.\n",
                   static_cast<long>(seq), what.c_str(), waited, rank(), handle_.device);
      std::fflush(stderr);
      ncclCommAbort(handle_.comm);
      handle_.comm = nullptr;
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
    timespec ts{0, 10000};
    nanosleep(&ts, nullptr);
  }
  seconds_in_collectives_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return absl::OkStatus();
}

absl::Status NcclCommunicator::AllReduce(const torch::Tensor& t, ReduceOp op) {
  if (auto s = CheckCollectiveArgs("AllReduce", t, t, t.numel(), t.numel()); !s.ok()) return s;
  if (Staged(t, t)) {
    auto d = OnGpu(t, handle_.device);
    auto s = AllReduce(d, op);
    if (s.ok()) t.copy_(d);
    return s;
  }
  auto type = NcclType(t);
  if (!type.ok()) return type.status();
  auto s = Nccl(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), *type, NcclOp(op), handle_.comm,
                              static_cast<cudaStream_t>(stream_)),
                "ncclAllReduce");
  return s.ok() ? Finish("AllReduce") : s;
}

absl::Status NcclCommunicator::ReduceScatter(const torch::Tensor& in, const torch::Tensor& out, ReduceOp op) {
  if (auto s = CheckCollectiveArgs("ReduceScatter", in, out, out.numel() * size(), out.numel()); !s.ok()) return s;
  if (Staged(in, out)) {
    auto d = torch::empty_like(out, out.options().device(torch::kCUDA, handle_.device));
    auto s = ReduceScatter(OnGpu(in, handle_.device), d, op);
    if (s.ok()) out.copy_(d);
    return s;
  }
  auto type = NcclType(in);
  if (!type.ok()) return type.status();
  auto s = Nccl(ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), *type, NcclOp(op), handle_.comm,
                                  static_cast<cudaStream_t>(stream_)),
                "ncclReduceScatter");
  return s.ok() ? Finish("ReduceScatter") : s;
}

absl::Status NcclCommunicator::AllGather(const torch::Tensor& in, const torch::Tensor& out) {
  if (auto s = CheckCollectiveArgs("AllGather", in, out, in.numel(), in.numel() * size()); !s.ok()) return s;
  if (Staged(in, out)) {
    auto d = torch::empty_like(out, out.options().device(torch::kCUDA, handle_.device));
    auto s = AllGather(OnGpu(in, handle_.device), d);
    if (s.ok()) out.copy_(d);
    return s;
  }
  auto type = NcclType(in);
  if (!type.ok()) return type.status();
  auto s = Nccl(ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), *type, handle_.comm,
                              static_cast<cudaStream_t>(stream_)),
                "ncclAllGather");
  return s.ok() ? Finish("AllGather") : s;
}

absl::Status NcclCommunicator::AllToAll(const torch::Tensor& in, const torch::Tensor& out) {
  if (in.numel() % size() != 0)
    return absl::InvalidArgumentError(absl::StrCat("AllToAll: ", in.numel(), " elements do not split into ", size(),
                                                   " equal chunks"));
  if (auto s = CheckCollectiveArgs("AllToAll", in, out, in.numel(), in.numel()); !s.ok()) return s;
  if (auto s = CheckCuda(in, "AllToAll"); !s.ok()) return s;
  auto type = NcclType(in);
  if (!type.ok()) return type.status();
  const int64_t chunk = in.numel() / size();
  const int64_t bytes = chunk * in.element_size();
  auto stream = static_cast<cudaStream_t>(stream_);
  ncclGroupStart();
  for (int peer = 0; peer < size(); ++peer) {
    ncclSend(static_cast<char*>(in.data_ptr()) + peer * bytes, chunk, *type, peer, handle_.comm, stream);
    ncclRecv(static_cast<char*>(out.data_ptr()) + peer * bytes, chunk, *type, peer, handle_.comm, stream);
  }
  auto s = Nccl(ncclGroupEnd(), "ncclGroupEnd(AllToAll)");
  return s.ok() ? Finish("AllToAll") : s;
}

absl::Status NcclCommunicator::Broadcast(const torch::Tensor& t, int root) {
  if (root < 0 || root >= size())
    return absl::InvalidArgumentError(absl::StrCat("Broadcast root ", root, " is not a rank of this ", size(),
                                                   "-rank communicator"));
  if (auto s = CheckCollectiveArgs("Broadcast", t, t, t.numel(), t.numel()); !s.ok()) return s;
  if (Staged(t, t)) {
    auto d = OnGpu(t, handle_.device);
    auto s = Broadcast(d, root);
    if (s.ok()) t.copy_(d);
    return s;
  }
  auto type = NcclType(t);
  if (!type.ok()) return type.status();
  auto s = Nccl(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), *type, root, handle_.comm,
                              static_cast<cudaStream_t>(stream_)),
                "ncclBroadcast");
  return s.ok() ? Finish("Broadcast") : s;
}

absl::Status NcclCommunicator::Barrier() {
  auto one = torch::zeros({1}, torch::TensorOptions().device(torch::kCUDA, handle_.device));
  return AllReduce(one, ReduceOp::kSum);
}

namespace {
// A transfer queued on the communicator's stream: Wait waits for the stream.
class QueuedOnStream : public PendingCollective {
 public:
  explicit QueuedOnStream(std::function<absl::Status()> finish) : finish_(std::move(finish)) {}
  absl::Status Wait() override {
    if (done_) return absl::OkStatus();
    done_ = true;
    return finish_();
  }

 private:
  std::function<absl::Status()> finish_;
  bool done_ = false;
};

absl::Status CheckNcclTag(int tag, const char* op) {
  if (tag != 0)
    return absl::InvalidArgumentError(absl::StrCat(op, ": tag ", tag, "; NCCL has no tags, use 0 (transfers "
                                                   "between two ranks match in posting order)"));
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartPointToPoint(bool send, const torch::Tensor& t,
                                                                                      int peer, int tag) {
  const char* op = send ? "Send" : "Recv";
  if (auto s = CheckPointToPointArgs(op, t, peer, tag, size()); !s.ok()) return s;
  if (auto s = CheckNcclTag(tag, op); !s.ok()) return s;
  if (auto s = CheckCuda(t, op); !s.ok()) return s;
  auto type = NcclType(t);
  if (!type.ok()) return type.status();
  auto* stream = static_cast<cudaStream_t>(stream_);
  const auto rc = send ? ncclSend(t.data_ptr(), t.numel(), *type, peer, handle_.comm, stream)
                       : ncclRecv(t.data_ptr(), t.numel(), *type, peer, handle_.comm, stream);
  if (auto s = Nccl(rc, send ? "ncclSend" : "ncclRecv"); !s.ok()) return s;
  const std::string what = absl::StrCat(op, send ? " to rank " : " from rank ", peer);
  return std::unique_ptr<PendingCollective>(new QueuedOnStream([this, what] { return Finish(what); }));
}

absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartSend(const torch::Tensor& t, int peer,
                                                                              int tag) {
  return StartPointToPoint(true, t, peer, tag);
}

absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartRecv(const torch::Tensor& t, int peer,
                                                                              int tag) {
  return StartPointToPoint(false, t, peer, tag);
}

absl::Status NcclCommunicator::SendRecv(const torch::Tensor& send, int to, const torch::Tensor& recv, int from,
                                        int tag) {
  if (auto s = CheckPointToPointArgs("SendRecv (send)", send, to, tag, size()); !s.ok()) return s;
  if (auto s = CheckPointToPointArgs("SendRecv (receive)", recv, from, tag, size()); !s.ok()) return s;
  if (auto s = CheckNcclTag(tag, "SendRecv"); !s.ok()) return s;
  if (auto s = CheckCuda(send, "SendRecv"); !s.ok()) return s;
  if (auto s = CheckCuda(recv, "SendRecv"); !s.ok()) return s;
  auto type = NcclType(send);
  if (!type.ok()) return type.status();
  if (send.data_ptr() == recv.data_ptr())
    return absl::InvalidArgumentError("SendRecv: the send and receive tensors share memory; receive into another");
  if (recv.scalar_type() != send.scalar_type())
    return absl::InvalidArgumentError("SendRecv: the send and receive tensors differ in dtype");
  auto stream = static_cast<cudaStream_t>(stream_);
  ncclGroupStart();
  ncclSend(send.data_ptr(), send.numel(), *type, to, handle_.comm, stream);
  ncclRecv(recv.data_ptr(), recv.numel(), *type, from, handle_.comm, stream);
  auto s = Nccl(ncclGroupEnd(), "ncclGroupEnd(SendRecv)");
  return s.ok() ? Finish(absl::StrCat("SendRecv to rank ", to, ", from rank ", from)) : s;
}

absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartSendRecv(
    const std::vector<torch::Tensor>& send, int to, const std::vector<torch::Tensor>& recv, int from, int /*tag*/) {
  if (send.size() != recv.size())
    return absl::InvalidArgumentError(absl::StrCat("StartSendRecv: ", send.size(), " tensors to send, ", recv.size(),
                                                   " to receive; give one receive per send"));
  std::vector<ncclDataType_t> types;
  for (size_t i = 0; i < send.size(); ++i) {
    if (auto s = CheckPointToPointArgs("StartSendRecv (send)", send[i], to, 0, size()); !s.ok()) return s;
    if (auto s = CheckPointToPointArgs("StartSendRecv (receive)", recv[i], from, 0, size()); !s.ok()) return s;
    if (auto s = CheckCuda(send[i], "StartSendRecv"); !s.ok()) return s;
    if (auto s = CheckCuda(recv[i], "StartSendRecv"); !s.ok()) return s;
    if (recv[i].scalar_type() != send[i].scalar_type() || recv[i].numel() != send[i].numel())
      return absl::InvalidArgumentError("StartSendRecv: a receive tensor differs from its send in dtype or size");
    if (send[i].data_ptr() == recv[i].data_ptr())
      return absl::InvalidArgumentError("StartSendRecv: a send and its receive share memory; receive into another");
    auto type = NcclType(send[i]);
    if (!type.ok()) return type.status();
    types.push_back(*type);
  }
  auto stream = static_cast<cudaStream_t>(stream_);
  ncclGroupStart();
  for (size_t i = 0; i < send.size(); ++i) {
    ncclSend(send[i].data_ptr(), send[i].numel(), types[i], to, handle_.comm, stream);
    ncclRecv(recv[i].data_ptr(), recv[i].numel(), types[i], from, handle_.comm, stream);
  }
  if (auto s = Nccl(ncclGroupEnd(), "ncclGroupEnd(StartSendRecv)"); !s.ok()) return s;
  const std::string what = absl::StrCat("SendRecv of ", send.size(), " tensors to rank ", to, ", from rank ", from);
  return std::unique_ptr<PendingCollective>(new QueuedOnStream([this, what] { return Finish(what); }));
}

absl::StatusOr<std::shared_ptr<Communicator>> NcclCommunicator::Split(int color, int key) {
  auto sub = mpi_->Split(color, key);
  if (!sub.ok()) return sub.status();
  auto mpi_sub = std::dynamic_pointer_cast<MpiCommunicator>(*sub);
  auto made = Create(mpi_sub, handle_.device);
  if (!made.ok()) return made.status();
  return std::shared_ptr<Communicator>(*std::move(made));
}

#else  // !DANCEGRPO_WITH_NCCL

namespace {
absl::Status NotBuilt() {
  return absl::UnimplementedError("the NCCL backend is not built; rebuild with `bazel build --config=cuda`");
}
}  // namespace

absl::StatusOr<std::shared_ptr<NcclCommunicator>> NcclCommunicator::Create(std::shared_ptr<MpiCommunicator>, int) {
  return NotBuilt();
}
NcclCommunicator::~NcclCommunicator() = default;
absl::Status NcclCommunicator::Finish(const std::string&) { return NotBuilt(); }
absl::Status NcclCommunicator::AllReduce(const torch::Tensor&, ReduceOp) { return NotBuilt(); }
absl::Status NcclCommunicator::ReduceScatter(const torch::Tensor&, const torch::Tensor&, ReduceOp) { return NotBuilt(); }
absl::Status NcclCommunicator::AllGather(const torch::Tensor&, const torch::Tensor&) { return NotBuilt(); }
absl::Status NcclCommunicator::AllToAll(const torch::Tensor&, const torch::Tensor&) { return NotBuilt(); }
absl::Status NcclCommunicator::Broadcast(const torch::Tensor&, int) { return NotBuilt(); }
absl::Status NcclCommunicator::Barrier() { return NotBuilt(); }
absl::StatusOr<std::shared_ptr<Communicator>> NcclCommunicator::Split(int, int) { return NotBuilt(); }
absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartSend(const torch::Tensor&, int, int) {
  return NotBuilt();
}
absl::StatusOr<std::unique_ptr<PendingCollective>> NcclCommunicator::StartRecv(const torch::Tensor&, int, int) {
  return NotBuilt();
}
absl::Status NcclCommunicator::SendRecv(const torch::Tensor&, int, const torch::Tensor&, int, int) {
  return NotBuilt();
}

#endif  // DANCEGRPO_WITH_NCCL

}  // namespace dancegrpo::hpc
