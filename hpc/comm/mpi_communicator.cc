#include "hpc/comm/mpi_communicator.h"

#include <functional>

#include <time.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpc/mpi_error.h"

namespace dancegrpo::hpc {
namespace {

constexpr int kArrivalTag = 7301;

using Clock = std::chrono::steady_clock;

absl::StatusOr<MPI_Datatype> MpiType(const torch::Tensor& t, bool reduction) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    case torch::kBool: return MPI_C_BOOL;
    case torch::kBFloat16:
      return MPI_UINT16_T;  // moved as raw 16-bit words; reduced by the bf16 ops below
    case torch::kFloat16:
      if (!reduction) return MPI_UINT16_T;
      [[fallthrough]];
    default:
      return absl::InvalidArgumentError(absl::StrCat("the MPI backend cannot ", reduction ? "reduce " : "move ",
                                                     c10::toString(t.scalar_type()), " tensors"));
  }
}

// MPI has no bf16 type: bf16 tensors travel as 16-bit words and are reduced by these user
// ops, which widen each pair to fp32, combine it and round back to bf16 (nearest even), as
// NCCL's bf16 reductions do.
template <typename Combine>
void BfloatReduce(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = c10::BFloat16(Combine()(static_cast<float>(a[i]), static_cast<float>(b[i])));
}
struct Sum {
  float operator()(float a, float b) const { return a + b; }
};
struct Max {
  float operator()(float a, float b) const { return std::max(a, b); }
};
struct Min {
  float operator()(float a, float b) const { return std::min(a, b); }
};

MPI_Op MpiOp(ReduceOp op, const torch::Tensor& t) {
  if (t.scalar_type() == torch::kBFloat16) {
    static MPI_Op ops[3] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
    const int i = op == ReduceOp::kMax ? 1 : op == ReduceOp::kMin ? 2 : 0;
    if (ops[i] == MPI_OP_NULL) {
      MPI_User_function* fn = i == 1 ? &BfloatReduce<Max> : i == 2 ? &BfloatReduce<Min> : &BfloatReduce<Sum>;
      MPI_Op_create(fn, /*commute=*/1, &ops[i]);
    }
    return ops[i];
  }
  switch (op) {
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
    default: return MPI_SUM;
  }
}

absl::Status CheckCpu(const torch::Tensor& t, const char* op) {
  if (!t.device().is_cpu())
    return absl::InvalidArgumentError(absl::StrCat(op, ": the MPI backend takes CPU tensors; use the NCCL backend ",
                                                   "(--config=cuda) for ", t.device().str(), " tensors"));
  if (t.numel() > INT_MAX)
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", t.numel(), " elements exceed one MPI call; bucket them"));
  return absl::OkStatus();
}

std::string Describe(const char* op, const torch::Tensor& t) {
  return absl::StrCat(op, " of ", t.numel(), " ", c10::toString(t.scalar_type()));
}

}  // namespace

absl::StatusOr<std::shared_ptr<MpiCommunicator>> MpiCommunicator::Create(MPI_Comm comm, WatchdogOptions options) {
  std::shared_ptr<MpiCommunicator> c(new MpiCommunicator());
  c->options_ = options;
  auto s = MpiCall(MPI_Comm_dup(comm, &c->comm_), "MPI_Comm_dup");
  if (s.ok()) s = MpiCall(MPI_Comm_dup(comm, &c->watch_comm_), "MPI_Comm_dup(watchdog)");
  if (!s.ok()) return s;
  MPI_Comm_set_errhandler(c->comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->comm_, &c->rank_);
  MPI_Comm_size(c->comm_, &c->size_);
  MPI_Group group, world;
  MPI_Comm_group(c->comm_, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  std::vector<int> local(c->size_);
  for (int i = 0; i < c->size_; ++i) local[i] = i;
  c->world_ranks_.resize(c->size_);
  MPI_Group_translate_ranks(group, c->size_, local.data(), world, c->world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  c->last_seen_.assign(c->size_, 0);
  return c;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto& p : sends_) MPI_Wait(&p.request, MPI_STATUS_IGNORE);
  if (watch_comm_ != MPI_COMM_NULL) {
    // Receive any announcements still in flight so the communicator can be freed cleanly.
    DrainArrivals();
    MPI_Comm_free(&watch_comm_);
  }
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

int64_t MpiCommunicator::Enter() {
  const int64_t seq = ++seq_;
  if (options_.timeout_seconds <= 0 || size_ == 1) return seq;
  while (!sends_.empty()) {  // retire completed announcements
    int done = 0;
    MPI_Test(&sends_.front().request, &done, MPI_STATUS_IGNORE);
    if (!done) break;
    sends_.pop_front();
  }
  for (int monitor = 0; monitor < std::min(2, size_); ++monitor) {
    if (monitor == rank_) continue;
    PendingSend p{std::make_unique<int64_t>(seq), MPI_REQUEST_NULL};
    MPI_Isend(p.value.get(), 1, MPI_INT64_T, monitor, kArrivalTag, watch_comm_, &p.request);
    sends_.push_back(std::move(p));
  }
  if (is_monitor()) last_seen_[rank_] = seq;
  return seq;
}

void MpiCommunicator::DrainArrivals() {
  while (true) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kArrivalTag, watch_comm_, &flag, &st);
    if (!flag) return;
    int64_t seq = 0;
    MPI_Recv(&seq, 1, MPI_INT64_T, st.MPI_SOURCE, kArrivalTag, watch_comm_, MPI_STATUS_IGNORE);
    last_seen_[st.MPI_SOURCE] = std::max(last_seen_[st.MPI_SOURCE], seq);
  }
}

void MpiCommunicator::ReportAndAbort(int64_t seq, const std::string& what, double waited) {
  std::string msg = absl::StrCat("DanceGRPO watchdog: collective #", seq, " (", what, ") on a ", size_,
                                 "-rank communicator has waited ", static_cast<int>(waited), " s (timeout ",
                                 options_.timeout_seconds, " s) on rank ", rank_, " (world rank ",
                                 world_ranks_[rank_], "). ");
  if (is_monitor()) {
    std::vector<std::string> late;
    for (int r = 0; r < size_; ++r) {
      if (last_seen_[r] < seq)
        late.push_back(absl::StrCat("rank ", r, " (world rank ", world_ranks_[r], ", last entered collective #",
                                    last_seen_[r], ")"));
    }
    if (late.empty()) {
      absl::StrAppend(&msg, "Every rank has entered it; the transport itself is stuck.");
    } else {
      absl::StrAppend(&msg, "Not arrived: ", absl::StrJoin(late, ", "),
                      ". Those ranks skipped this collective, are stuck before it, or died.");
    }
  } else {
    absl::StrAppend(&msg, "The monitor ranks (0 and 1) did not report; this rank cannot name the late ranks.");
  }
  absl::StrAppend(&msg, " Aborting the job.");
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::abort();  // MPI_Abort does not return; keep the compiler and the contract honest
}

absl::Status MpiCommunicator::Wait(MPI_Request* request, int rc, const std::string& what) {
  if (rc != MPI_SUCCESS) return MpiStatus(rc, what);
  const int64_t seq = seq_;
  const auto start = Clock::now();
  double grace_until = -1;
  for (int spins = 0;; ++spins) {
    int done = 0;
    MPI_Status status;
    rc = MPI_Test(request, &done, &status);
    if (rc != MPI_SUCCESS) return MpiStatus(rc, what);
    if (done) break;
    if (options_.timeout_seconds > 0) {
      if (is_monitor()) DrainArrivals();
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (waited > options_.timeout_seconds) {
        if (is_monitor() || size_ <= 2) ReportAndAbort(seq, what, waited);
        // Give a monitor time to name the late ranks first.
        if (grace_until < 0) grace_until = waited + std::min(5.0, options_.timeout_seconds);
        if (waited > grace_until) ReportAndAbort(seq, what, waited);
      }
    }
    if (spins > 64) {
      // Oversubscribed CPU runs: yield the core instead of spinning hot.
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  seconds_in_collectives_ += std::chrono::duration<double>(Clock::now() - start).count();
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllReduce(const torch::Tensor& t, ReduceOp op) {
  if (auto s = CheckCollectiveArgs("AllReduce", t, t, t.numel(), t.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(t, "AllReduce"); !s.ok()) return s;
  auto type = MpiType(t, true);
  if (!type.ok()) return type.status();
  Enter();
  MPI_Request req;
  const int rc = MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), *type, MpiOp(op, t), comm_, &req);
  return Wait(&req, rc, Describe("AllReduce", t));
}

absl::Status MpiCommunicator::ReduceScatter(const torch::Tensor& in, const torch::Tensor& out, ReduceOp op) {
  if (auto s = CheckCollectiveArgs("ReduceScatter", in, out, out.numel() * size_, out.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(in, "ReduceScatter"); !s.ok()) return s;
  auto type = MpiType(in, true);
  if (!type.ok()) return type.status();
  Enter();
  MPI_Request req;
  const int rc = MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), static_cast<int>(out.numel()), *type,
                                           MpiOp(op, in), comm_, &req);
  return Wait(&req, rc, Describe("ReduceScatter", in));
}

absl::Status MpiCommunicator::AllGather(const torch::Tensor& in, const torch::Tensor& out) {
  if (auto s = CheckCollectiveArgs("AllGather", in, out, in.numel(), in.numel() * size_); !s.ok()) return s;
  if (auto s = CheckCpu(out, "AllGather"); !s.ok()) return s;
  auto type = MpiType(in, false);
  if (!type.ok()) return type.status();
  Enter();
  MPI_Request req;
  const int n = static_cast<int>(in.numel());
  const int rc = MPI_Iallgather(in.data_ptr(), n, *type, out.data_ptr(), n, *type, comm_, &req);
  return Wait(&req, rc, Describe("AllGather", in));
}

namespace {
class PendingMpi : public PendingCollective {
 public:
  explicit PendingMpi(std::function<absl::Status(MPI_Request*)> wait) : wait_(std::move(wait)) {}
  absl::Status Wait() override {
    if (done_) return absl::OkStatus();
    done_ = true;
    return wait_(&request_);
  }
  MPI_Request* request() { return &request_; }

 private:
  std::function<absl::Status(MPI_Request*)> wait_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};
}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartAllGather(const torch::Tensor& in,
                                                                                  const torch::Tensor& out) {
  if (auto s = CheckCollectiveArgs("AllGather", in, out, in.numel(), in.numel() * size_); !s.ok()) return s;
  if (auto s = CheckCpu(out, "AllGather"); !s.ok()) return s;
  auto type = MpiType(in, false);
  if (!type.ok()) return type.status();
  Enter();
  const int n = static_cast<int>(in.numel());
  const std::string what = Describe("AllGather (prefetch)", in);
  auto pending = std::make_unique<PendingMpi>([this, what](MPI_Request* r) { return Wait(r, MPI_SUCCESS, what); });
  const int rc = MPI_Iallgather(in.data_ptr(), n, *type, out.data_ptr(), n, *type, comm_, pending->request());
  if (rc != MPI_SUCCESS) return Wait(pending->request(), rc, what);
  return std::unique_ptr<PendingCollective>(std::move(pending));
}

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartAllReduce(const torch::Tensor& t,
                                                                                  ReduceOp op) {
  if (auto s = CheckCollectiveArgs("AllReduce", t, t, t.numel(), t.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(t, "AllReduce"); !s.ok()) return s;
  auto type = MpiType(t, true);
  if (!type.ok()) return type.status();
  Enter();
  const std::string what = Describe("AllReduce (started)", t);
  auto pending = std::make_unique<PendingMpi>([this, what](MPI_Request* r) { return Wait(r, MPI_SUCCESS, what); });
  const int rc = MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), *type, MpiOp(op, t), comm_,
                                pending->request());
  if (rc != MPI_SUCCESS) return Wait(pending->request(), rc, what);
  return std::unique_ptr<PendingCollective>(std::move(pending));
}

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartReduceScatter(const torch::Tensor& in,
                                                                                      const torch::Tensor& out,
                                                                                      ReduceOp op) {
  if (auto s = CheckCollectiveArgs("ReduceScatter", in, out, out.numel() * size_, out.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(in, "ReduceScatter"); !s.ok()) return s;
  auto type = MpiType(in, true);
  if (!type.ok()) return type.status();
  Enter();
  const std::string what = Describe("ReduceScatter (started)", in);
  auto pending = std::make_unique<PendingMpi>([this, what](MPI_Request* r) { return Wait(r, MPI_SUCCESS, what); });
  const int rc = MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), static_cast<int>(out.numel()), *type,
                                           MpiOp(op, in), comm_, pending->request());
  if (rc != MPI_SUCCESS) return Wait(pending->request(), rc, what);
  return std::unique_ptr<PendingCollective>(std::move(pending));
}

absl::Status MpiCommunicator::WaitPeer(MPI_Request* request, const std::string& what) {
  const auto start = Clock::now();
  for (int spins = 0;; ++spins) {
    int done = 0;
    const int rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return MpiStatus(rc, what);
    if (done) break;
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (options_.timeout_seconds > 0 && waited > options_.timeout_seconds) {
      std::fprintf(stderr,
                   "DanceGRPO watchdog: %s on rank %d (world rank %d) has waited %d s (timeout %g s): the peer never "
                   "posted the matching transfer, is stuck before it, or died. Aborting the job.\n",
                   what.c_str(), rank_, world_ranks_[rank_], static_cast<int>(waited), options_.timeout_seconds);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 3);
      std::abort();
    }
    if (spins > 64) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  seconds_in_collectives_ += std::chrono::duration<double>(Clock::now() - start).count();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartPointToPoint(bool send, const torch::Tensor& t,
                                                                                     int peer, int tag) {
  const char* op = send ? "Send" : "Recv";
  if (auto s = CheckPointToPointArgs(op, t, peer, tag, size_); !s.ok()) return s;
  if (auto s = CheckCpu(t, op); !s.ok()) return s;
  auto type = MpiType(t, false);
  if (!type.ok()) return type.status();
  const std::string what = absl::StrCat(Describe(op, t), send ? " to rank " : " from rank ", peer, " (world rank ",
                                        world_ranks_[peer], "), tag ", tag);
  auto pending = std::make_unique<PendingMpi>([this, what](MPI_Request* r) { return WaitPeer(r, what); });
  const int n = static_cast<int>(t.numel());
  const int rc = send ? MPI_Isend(t.data_ptr(), n, *type, peer, tag, comm_, pending->request())
                      : MPI_Irecv(t.data_ptr(), n, *type, peer, tag, comm_, pending->request());
  if (rc != MPI_SUCCESS) return MpiStatus(rc, what);
  return std::unique_ptr<PendingCollective>(std::move(pending));
}

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartSend(const torch::Tensor& t, int peer,
                                                                             int tag) {
  return StartPointToPoint(true, t, peer, tag);
}

absl::StatusOr<std::unique_ptr<PendingCollective>> MpiCommunicator::StartRecv(const torch::Tensor& t, int peer,
                                                                             int tag) {
  return StartPointToPoint(false, t, peer, tag);
}

absl::StatusOr<int> MpiCommunicator::RanksOnThisNode(MPI_Comm comm) {
  int rank = 0;
  if (auto s = MpiCall(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank"); !s.ok()) return s;
  MPI_Comm node;
  if (auto s = MpiCall(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
                       "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)");
      !s.ok())
    return s;
  int size = 1;
  const int rc = MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  if (auto s = MpiCall(rc, "MPI_Comm_size"); !s.ok()) return s;
  return size;
}

absl::Status MpiCommunicator::AllToAll(const torch::Tensor& in, const torch::Tensor& out) {
  if (in.numel() % size_ != 0)
    return absl::InvalidArgumentError(absl::StrCat("AllToAll: ", in.numel(), " elements do not split into ", size_,
                                                   " equal chunks"));
  if (auto s = CheckCollectiveArgs("AllToAll", in, out, in.numel(), in.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(in, "AllToAll"); !s.ok()) return s;
  auto type = MpiType(in, false);
  if (!type.ok()) return type.status();
  Enter();
  MPI_Request req;
  const int chunk = static_cast<int>(in.numel() / size_);
  const int rc = MPI_Ialltoall(in.data_ptr(), chunk, *type, out.data_ptr(), chunk, *type, comm_, &req);
  return Wait(&req, rc, Describe("AllToAll", in));
}

absl::Status MpiCommunicator::Broadcast(const torch::Tensor& t, int root) {
  if (root < 0 || root >= size_)
    return absl::InvalidArgumentError(absl::StrCat("Broadcast root ", root, " is not a rank of this ", size_,
                                                   "-rank communicator"));
  if (auto s = CheckCollectiveArgs("Broadcast", t, t, t.numel(), t.numel()); !s.ok()) return s;
  if (auto s = CheckCpu(t, "Broadcast"); !s.ok()) return s;
  auto type = MpiType(t, false);
  if (!type.ok()) return type.status();
  Enter();
  MPI_Request req;
  const int rc = MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), *type, root, comm_, &req);
  return Wait(&req, rc, Describe("Broadcast", t));
}

absl::Status MpiCommunicator::Barrier() {
  Enter();
  MPI_Request req;
  const int rc = MPI_Ibarrier(comm_, &req);
  return Wait(&req, rc, "Barrier");
}

absl::StatusOr<std::shared_ptr<Communicator>> MpiCommunicator::Split(int color, int key) {
  // The split is itself a collective: guard it with a watched barrier first.
  if (auto s = Barrier(); !s.ok()) return s;
  MPI_Comm sub;
  if (auto s = MpiCall(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split(color=%d, key=%d)", color, key);
      !s.ok())
    return s;
  auto made = Create(sub, options_);
  MPI_Comm_free(&sub);
  if (!made.ok()) return made.status();
  return std::shared_ptr<Communicator>(*std::move(made));
}

}  // namespace dancegrpo::hpc
