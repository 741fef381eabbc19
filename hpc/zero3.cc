#include "hpc/zero3.h"

#include <torch/torch.h>

#include <c10/util/accumulate.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "hpc/buckets.h"
#include "hpc/memory.h"

// Prefetch: over MPI the next block's gather is an MPI_Iallgather, progressed while the
// current block computes. Over NCCL, StartAllGather is still the blocking default: the NCCL
// communicator's stream is a blocking stream, ordered after libtorch's work on the legacy
// default stream, so an overlapping gather needs a non-blocking side stream and events
// (planned; not done: no GPU was lent when this was written).

namespace dancegrpo::hpc {

absl::StatusOr<std::shared_ptr<ShardedParameters>> ShardedParameters::Shard(std::vector<UnitSpec> specs,
                                                                            std::shared_ptr<Communicator> comm,
                                                                            torch::ScalarType compute_dtype,
                                                                            torch::Device device,
                                                                            torch::ScalarType reduce_dtype) {
  if (!comm) return absl::InvalidArgumentError("ZeRO-3 sharding needs a communicator");
  std::shared_ptr<ShardedParameters> s(new ShardedParameters());
  s->comm_ = std::move(comm);
  s->bucket_elements_ = BucketElementsPerRank(s->comm_->size());
  s->compute_dtype_ = compute_dtype;
  s->reduce_dtype_ = reduce_dtype;
  const int n = s->comm_->size(), r = s->comm_->rank();
  torch::NoGradGuard no_grad;
  for (auto& spec : specs) {
    ShardedUnit u;
    u.group = spec.group;
    u.trained = spec.trained;
    u.names = std::move(spec.names);
    u.params = std::move(spec.params);
    for (const auto& p : u.params) {
      if (p.numel() == 0)
        return absl::FailedPreconditionError(absl::StrCat("parameter '", u.names[u.offsets.size()],
                                                          "' is empty or already sharded"));
      u.offsets.push_back(u.total);
      u.shapes.push_back(p.sizes().vec());
      u.total += p.numel();
    }
    u.shard_size = (u.total + n - 1) / n;
    const int64_t begin = r * u.shard_size, end = begin + u.shard_size;
    auto slice = torch::zeros({u.shard_size}, torch::kFloat32);
    for (size_t i = 0; i < u.params.size(); ++i) {
      const int64_t a = std::max(begin, u.offsets[i]), b = std::min(end, u.offsets[i] + u.params[i].numel());
      if (a < b)
        slice.narrow(0, a - begin, b - a)
            .copy_(u.params[i].detach().reshape(-1).narrow(0, a - u.offsets[i], b - a).to(torch::kFloat32));
    }
    if (u.trained) {
      u.master = slice.to(device);
      u.compute = compute_dtype == torch::kFloat32 ? u.master : u.master.to(compute_dtype);
      u.grad = torch::zeros({u.shard_size}, u.master.options());
    } else {
      u.compute = slice.to(device, compute_dtype);
    }
    s->units_.push_back(std::move(u));
  }
  for (auto& u : s->units_)
    for (auto& p : u.params) p.set_data(torch::empty({0}, u.compute.options()));
  return s;
}

std::vector<int> ShardedParameters::UnitsOf(int group) const {
  std::vector<int> out;
  for (size_t i = 0; i < units_.size(); ++i)
    if (units_[i].group == group) out.push_back(static_cast<int>(i));
  return out;
}

int ShardedParameters::UnitOf(const torch::Tensor& param) const {
  for (size_t i = 0; i < units_.size(); ++i)
    for (const auto& p : units_[i].params)
      if (p.unsafeGetTensorImpl() == param.unsafeGetTensorImpl()) return static_cast<int>(i);
  return -1;
}

void ShardedParameters::Prefetch(int group) {
  if (started_.count(group)) return;
  auto& s = started_[group];
  const int n = comm_->size();
  for (int ui : UnitsOf(group)) {
    auto& u = units_[ui];
    s.full.push_back(torch::empty({n * u.shard_size}, u.compute.options()));
    auto pending = comm_->StartAllGather(u.compute, s.full.back());
    if (!pending.ok()) {
      s.status = pending.status();
      return;
    }
    s.pending.push_back(*std::move(pending));
  }
  ++prefetches_;
}

absl::Status ShardedParameters::Gather(int group) {
  torch::NoGradGuard no_grad;
  const int n = comm_->size();
  Started prefetched;
  if (auto it = started_.find(group); it != started_.end()) {
    prefetched = std::move(it->second);
    started_.erase(it);
    for (auto& p : prefetched.pending)  // (all of them, even after a failed start)
      if (auto st = p->Wait(); !st.ok() && prefetched.status.ok()) prefetched.status = st;
    if (!prefetched.status.ok()) return prefetched.status;
  }
  const auto units = UnitsOf(group);
  for (size_t k = 0; k < units.size(); ++k) {
    auto& u = units_[units[k]];
    torch::Tensor full;
    if (k < prefetched.full.size()) {
      full = prefetched.full[k];
    } else {
      full = torch::empty({n * u.shard_size}, u.compute.options());
      if (auto st = comm_->AllGather(u.compute, full); !st.ok()) return st;
    }
    ++gathers_;
    for (size_t i = 0; i < u.params.size(); ++i) {
      const int64_t count = c10::multiply_integers(u.shapes[i]);
      u.params[i].set_data(full.narrow(0, u.offsets[i], count).view(u.shapes[i]));
    }
  }
  return absl::OkStatus();
}

void ShardedParameters::Release(int group) {
  for (int ui : UnitsOf(group)) {
    auto& u = units_[ui];
    for (auto& p : u.params) p.set_data(torch::empty({0}, u.compute.options()));
  }
}

absl::Status ShardedParameters::ReduceGradients(int group) {
  torch::NoGradGuard no_grad;
  const int n = comm_->size();
  for (int ui : UnitsOf(group)) {
    auto& u = units_[ui];
    if (!u.trained) continue;
    // In buckets of the slice: row r of the send buffer is this rank's gradient over
    // [r S + o, r S + o + c) of the unit (zeros where no parameter lies: padding, or a
    // parameter without a gradient), so no unit-sized flat copy of the gradient is made.
    const int64_t S = u.shard_size;
    for (int64_t o = 0; o < S; o += bucket_elements_) {
      const int64_t c = std::min(bucket_elements_, S - o);
      auto send = torch::zeros({n, c}, u.grad.options().dtype(reduce_dtype_));
      for (int r = 0; r < n; ++r) {
        const int64_t lo = r * S + o, hi = lo + c;
        for (size_t i = 0; i < u.params.size(); ++i) {
          const auto& g = u.params[i].grad();
          if (!g.defined()) continue;
          const int64_t a = std::max(lo, u.offsets[i]), b = std::min(hi, u.offsets[i] + g.numel());
          if (a < b) send[r].narrow(0, a - lo, b - a).copy_(g.reshape(-1).narrow(0, a - u.offsets[i], b - a));
        }
      }
      auto mine = torch::empty({c}, send.options());
      if (auto st = comm_->ReduceScatter(send.view({-1}), mine, ReduceOp::kSum); !st.ok()) return st;
      u.grad.narrow(0, o, c).add_(mine.to(torch::kFloat32));
    }
    for (auto& p : u.params)
      if (p.grad().defined()) p.mutable_grad().reset();
  }
  return absl::OkStatus();
}

int64_t ShardedParameters::resident_bytes() const {
  int64_t bytes = 0;
  for (const auto& u : units_) {
    bytes += u.compute.numel() * u.compute.element_size();
    if (u.master.defined() && !u.master.is_same(u.compute)) bytes += u.master.numel() * 4;
  }
  return bytes;
}

void ShardedParameters::SyncCompute(int unit) {
  auto& u = units_[unit];
  if (!u.master.defined() || u.master.is_same(u.compute)) return;
  torch::NoGradGuard no_grad;
  u.compute.copy_(u.master);
}

void ShardedParameters::Adopt(int unit, torch::Tensor master_view, torch::Tensor grad_view) {
  auto& u = units_[unit];
  torch::NoGradGuard no_grad;
  master_view.copy_(u.master);
  grad_view.copy_(u.grad);
  const bool alias = u.master.is_same(u.compute);
  u.master = master_view;
  u.grad = grad_view;
  if (alias) u.compute = u.master;
}

absl::Status ShardTurns(Communicator& comm, const std::function<absl::Status()>& materialise) {
  absl::Status mine = absl::OkStatus();
  for (int turn = 0; turn < comm.size(); ++turn) {
    if (turn == comm.rank()) {
      mine = materialise();
      ReleaseFreeMemory();  // what this rank freed goes back to the kernel before the next turn
    }
    if (auto st = comm.Barrier(); !st.ok()) return st;
  }
  auto failed = torch::tensor({mine.ok() ? 0 : 1}, torch::kInt64);
  if (auto st = comm.AllReduce(failed, ReduceOp::kMax); !st.ok()) return st;
  if (!mine.ok()) return mine;
  if (failed.item<int64_t>() != 0) return absl::InternalError("another rank failed to build its shard of the model");
  return absl::OkStatus();
}

}  // namespace dancegrpo::hpc
