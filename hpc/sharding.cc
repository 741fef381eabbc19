#include "hpc/sharding.h"

#include <torch/torch.h>

#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "hpc/buckets.h"

namespace dancegrpo::hpc {

absl::Status ValidateAdamWConfig(const AdamWConfig& c) {
  if (!std::isfinite(c.lr) || !(c.lr > 0))
    return absl::InvalidArgumentError(absl::StrCat("learning rate ", c.lr, " is not a finite positive number; use "
                                                   "e.g. --lr=1e-5 (DanceGRPO's default)"));
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1))
    return absl::InvalidArgumentError(absl::StrCat("AdamW betas (", c.beta1, ", ", c.beta2, ") must lie in [0, 1)"));
  if (!std::isfinite(c.eps) || !(c.eps > 0))
    return absl::InvalidArgumentError(absl::StrCat("AdamW eps ", c.eps, " must be finite and > 0 (e.g. 1e-8)"));
  if (!std::isfinite(c.weight_decay) || c.weight_decay < 0)
    return absl::InvalidArgumentError(absl::StrCat("weight decay ", c.weight_decay, " must be finite and >= 0"));
  if (std::isnan(c.max_grad_norm))
    return absl::InvalidArgumentError("max_grad_norm is NaN; use a positive norm, or <= 0 for no clipping");
  if (c.ema && !(c.ema_decay >= 0 && c.ema_decay <= 1))
    return absl::InvalidArgumentError(absl::StrCat("EMA decay ", c.ema_decay, " must lie in [0, 1]"));
  if (c.reduce_dtype != torch::kFloat32 && c.reduce_dtype != torch::kBFloat16)
    return absl::InvalidArgumentError("gradients are reduced in fp32 or bf16");
  if (c.bucket_elements < 0)
    return absl::InvalidArgumentError("bucket_elements must be >= 1, or 0 for the default (hpc/buckets.h)");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShardedAdamW>> ShardedAdamW::Create(std::vector<torch::Tensor> parameters,
                                                                   std::shared_ptr<Communicator> comm,
                                                                   const AdamWConfig& config,
                                                                   std::shared_ptr<ShardedParameters> sharded) {
  if (!comm) return absl::InvalidArgumentError("ShardedAdamW needs a communicator");
  if (auto s = ValidateAdamWConfig(config); !s.ok()) return s;
  std::unique_ptr<ShardedAdamW> o(new ShardedAdamW());
  o->config_ = config;
  o->comm_ = std::move(comm);
  if (o->config_.bucket_elements == 0) o->config_.bucket_elements = BucketElementsPerRank(o->comm_->size());
  o->sharded_ = std::move(sharded);
  o->parameters_ = std::move(parameters);
  o->options_ = torch::TensorOptions().dtype(torch::kFloat32);
  if (!o->parameters_.empty()) o->options_ = o->options_.device(o->parameters_[0].device());
  const int n = o->comm_->size();
  // Each parameter is either replicated (ZeRO-2) or in a trained ZeRO-3 unit.
  std::vector<int> unit_of(o->parameters_.size(), -1);
  std::vector<int64_t> logical;  // offset of each parameter in the logical vector
  torch::ScalarType dtype = o->sharded_ ? o->sharded_->compute_dtype() : torch::kFloat32;
  bool dtype_known = static_cast<bool>(o->sharded_);
  for (size_t i = 0; i < o->parameters_.size(); ++i) {
    const auto& p = o->parameters_[i];
    const int u = o->sharded_ ? o->sharded_->UnitOf(p) : -1;
    unit_of[i] = u;
    if (u >= 0) {
      const auto& unit = o->sharded_->units()[u];
      if (!unit.trained)
        return absl::InvalidArgumentError("a frozen ZeRO-3 unit's parameter was passed to the optimizer");
      for (size_t k = 0; k < unit.params.size(); ++k)
        if (unit.params[k].unsafeGetTensorImpl() == p.unsafeGetTensorImpl()) o->shapes_.push_back(unit.shapes[k]);
      if (std::find(o->units_.begin(), o->units_.end(), u) == o->units_.end()) o->units_.push_back(u);
    } else {
      const auto t = p.scalar_type();
      if (!dtype_known) dtype = t, dtype_known = true;
      if (t != dtype || p.device() != o->parameters_[0].device() ||
          (t != torch::kFloat32 && t != torch::kBFloat16 && t != torch::kFloat16))
        return absl::InvalidArgumentError(absl::StrCat(
            "ShardedAdamW takes parameters of one floating dtype (fp32, or bf16/fp16 compute copies) on one device; "
            "got ", c10::toString(t), " on ", p.device().str(), " beside ", c10::toString(dtype), " on ",
            o->parameters_[0].device().str()));
      o->shapes_.push_back(p.sizes().vec());
      o->replicated_.push_back(static_cast<int>(i));
      o->offsets_.push_back(o->replicated_total_);
      o->replicated_total_ += p.numel();
    }
    logical.push_back(o->total_);
    o->total_ += c10::multiply_integers(o->shapes_.back());
  }
  for (int u : o->units_) {  // a unit is stepped whole: all of its parameters must be here
    for (const auto& p : o->sharded_->units()[u].params) {
      bool found = false;
      for (const auto& q : o->parameters_) found = found || q.unsafeGetTensorImpl() == p.unsafeGetTensorImpl();
      if (!found) return absl::InvalidArgumentError("a ZeRO-3 unit's parameters must all be trained together");
    }
  }
  // Every rank must agree on the layout, or the shards would silently misalign.
  auto count = torch::tensor({o->total_, static_cast<int64_t>(o->parameters_.size()), o->replicated_total_},
                             torch::kInt64);
  auto mx = count.clone(), mn = count.clone();
  if (auto s = o->comm_->AllReduce(mx, ReduceOp::kMax); !s.ok()) return s;
  if (auto s = o->comm_->AllReduce(mn, ReduceOp::kMin); !s.ok()) return s;
  if (!torch::equal(mx, mn))
    return absl::FailedPreconditionError(absl::StrCat("ranks disagree on the parameters (this rank: ",
                                                      o->parameters_.size(), " tensors, ", o->total_,
                                                      " elements); build the same model on every rank"));
  const int r = o->comm_->rank();
  o->replicated_shard_ = (o->replicated_total_ + n - 1) / n;
  o->shard_begin_ = r * o->replicated_shard_;
  o->shard_size_ = o->replicated_shard_;
  for (int u : o->units_) {
    o->unit_state_offsets_.push_back(o->shard_size_);
    o->shard_size_ += o->sharded_->units()[u].shard_size;
  }
  // Segments: this rank's state against the logical vector.
  auto add = [&](int64_t state, int64_t logical_offset, int64_t c) {
    if (c > 0) o->segments_.push_back({state, logical_offset, c});
  };
  const int64_t rep_end = std::min(o->shard_begin_ + o->replicated_shard_, o->replicated_total_);
  for (size_t j = 0; j < o->replicated_.size(); ++j) {
    const int64_t lo = std::max(o->shard_begin_, o->offsets_[j]);
    const int64_t hi = std::min(rep_end, o->offsets_[j] + c10::multiply_integers(o->shapes_[o->replicated_[j]]));
    if (lo < hi) add(lo - o->shard_begin_, logical[o->replicated_[j]] + lo - o->offsets_[j], hi - lo);
  }
  for (size_t k = 0; k < o->units_.size(); ++k) {
    const auto& unit = o->sharded_->units()[o->units_[k]];
    const int64_t begin = r * unit.shard_size, end = std::min(begin + unit.shard_size, unit.total);
    for (size_t q = 0; q < unit.params.size(); ++q) {
      size_t i = 0;
      while (o->parameters_[i].unsafeGetTensorImpl() != unit.params[q].unsafeGetTensorImpl()) ++i;
      const int64_t lo = std::max(begin, unit.offsets[q]);
      const int64_t hi = std::min(end, unit.offsets[q] + c10::multiply_integers(unit.shapes[q]));
      if (lo < hi) add(o->unit_state_offsets_[k] + lo - begin, logical[i] + lo - unit.offsets[q], hi - lo);
    }
  }
  std::sort(o->segments_.begin(), o->segments_.end(),
            [](const Segment& a, const Segment& b) { return a.logical_offset < b.logical_offset; });
  std::vector<Segment> merged;
  for (const auto& g : o->segments_) {
    if (!merged.empty() && merged.back().logical_offset + merged.back().count == g.logical_offset &&
        merged.back().state_offset + merged.back().count == g.state_offset) {
      merged.back().count += g.count;
    } else {
      merged.push_back(g);
    }
  }
  o->segments_ = std::move(merged);

  o->exp_avg_ = torch::zeros({o->shard_size_}, o->options_);
  o->exp_avg_sq_ = torch::zeros({o->shard_size_}, o->options_);
  o->grad_ = torch::zeros({o->shard_size_}, o->options_);
  const bool compute_copies = dtype != torch::kFloat32;
  if (compute_copies || o->sharded_ || config.ema) {
    auto state = torch::zeros({o->shard_size_}, o->options_);
    state.narrow(0, 0, o->replicated_shard_)
        .copy_(o->Flatten(o->parameters_).narrow(0, o->shard_begin_, o->replicated_shard_));
    if (compute_copies || o->sharded_) {
      o->master_ = state;
      for (size_t k = 0; k < o->units_.size(); ++k) {
        const int64_t size = o->sharded_->units()[o->units_[k]].shard_size;
        o->sharded_->Adopt(o->units_[k], o->master_.narrow(0, o->unit_state_offsets_[k], size),
                           o->grad_.narrow(0, o->unit_state_offsets_[k], size));
      }
    }
    if (config.ema) o->ema_ = state.clone();
  }
  if (o->sharded_) {
    o->sharded_->set_reduce_dtype(config.reduce_dtype);
    o->sharded_->set_bucket_elements(o->config_.bucket_elements);
  }
  return o;
}

int64_t ShardedAdamW::state_bytes() const {
  auto n = [](const torch::Tensor& t) { return t.defined() ? t.numel() : 0; };
  return (n(exp_avg_) + n(exp_avg_sq_) + n(ema_) + n(master_)) * 4;
}

torch::Tensor ShardedAdamW::MasterShard() const {
  if (master_.defined()) return master_;
  return Flatten(parameters_).narrow(0, shard_begin_, replicated_shard_);
}

void ShardedAdamW::LoadFlat(const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  auto values = Unflatten(flat.to(options_));
  for (int i : replicated_) parameters_[i].copy_(values[i]);
  if (master_.defined()) {  // this rank's slice; the padding past the end stays zero
    auto rep = master_.narrow(0, 0, replicated_shard_);
    rep.zero_();
    const int64_t count = std::max<int64_t>(0, std::min(shard_begin_ + replicated_shard_, replicated_total_) - shard_begin_);
    if (count > 0) rep.narrow(0, 0, count).copy_(flat.narrow(0, shard_begin_, count));
  }
}

absl::Status ShardedAdamW::LoadMasterShard(const torch::Tensor& state) {
  torch::NoGradGuard no_grad;
  auto values = state.to(options_);
  if (master_.defined()) master_.copy_(values);
  for (int u : units_) sharded_->SyncCompute(u);
  if (replicated_total_ > 0) return GatherReplicated(values.narrow(0, 0, replicated_shard_));
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> ShardedAdamW::GatherMasters() {
  auto out = torch::zeros({total_}, options_);
  const auto src = MasterShard();
  for (const auto& g : segments_) out.narrow(0, g.logical_offset, g.count).copy_(src.narrow(0, g.state_offset, g.count));
  if (auto s = comm_->AllReduce(out, ReduceOp::kSum); !s.ok()) return s;
  return out;
}

torch::Tensor ShardedAdamW::Flatten(const std::vector<torch::Tensor>& tensors) const {
  auto flat = torch::zeros({replicated_shard_ * comm_->size()}, options_);
  for (size_t j = 0; j < replicated_.size(); ++j) {
    const auto& t = tensors[replicated_[j]];
    if (t.defined()) flat.narrow(0, offsets_[j], t.numel()).copy_(t.reshape(-1));
  }
  return flat;
}

std::vector<torch::Tensor> ShardedAdamW::Unflatten(const torch::Tensor& flat) const {
  std::vector<torch::Tensor> out(parameters_.size());
  for (size_t j = 0; j < replicated_.size(); ++j) {
    const auto& shape = shapes_[replicated_[j]];
    out[replicated_[j]] = flat.narrow(0, offsets_[j], c10::multiply_integers(shape)).view(shape);
  }
  return out;
}

void ShardedAdamW::ZeroGrad() {
  for (int i : replicated_)
    if (parameters_[i].grad().defined()) parameters_[i].mutable_grad().zero_();
  if (grad_.defined()) grad_.zero_();
}

absl::Status ShardedAdamW::GatherShards(const torch::Tensor& shard, torch::Tensor& flat) {
  const int n = comm_->size();
  const int64_t size = shard.numel();
  auto grid = flat.view({n, size});
  for (int64_t o = 0; o < size; o += config_.bucket_elements) {
    const int64_t c = std::min(config_.bucket_elements, size - o);
    auto send = shard.narrow(0, o, c).contiguous();
    auto recv = torch::empty({n * c}, send.options());
    if (auto s = comm_->AllGather(send, recv); !s.ok()) return s;
    grid.narrow(1, o, c).copy_(recv.view({n, c}));
  }
  return absl::OkStatus();
}

absl::Status ShardedAdamW::GatherReplicated(const torch::Tensor& shard) {
  const auto dtype = parameters_[replicated_[0]].scalar_type();
  auto flat = torch::empty({comm_->size() * replicated_shard_}, options_.dtype(dtype));
  if (auto s = GatherShards(shard.to(dtype), flat); !s.ok()) return s;
  auto updated = Unflatten(flat);
  for (int i : replicated_) parameters_[i].copy_(updated[i]);
  return absl::OkStatus();
}

absl::StatusOr<double> ShardedAdamW::Step() {
  torch::NoGradGuard no_grad;
  const int n = comm_->size();
  // 1. Reduce-scatter the replicated parameters' gradients, bucket by bucket (in
  //    reduce_dtype), into fp32. ZeRO-3 units' slices were summed during backward.
  if (replicated_total_ > 0) {
    std::vector<torch::Tensor> grads(parameters_.size());
    for (int i : replicated_) grads[i] = parameters_[i].grad();
    auto flat_grad = Flatten(grads).view({n, replicated_shard_});
    if (config_.reduce_dtype != torch::kFloat32) flat_grad = flat_grad.to(config_.reduce_dtype);
    for (int64_t o = 0; o < replicated_shard_; o += config_.bucket_elements) {
      const int64_t c = std::min(config_.bucket_elements, replicated_shard_ - o);
      auto send = flat_grad.narrow(1, o, c).contiguous();
      auto recv = torch::empty({c}, send.options());
      if (auto s = comm_->ReduceScatter(send, recv, ReduceOp::kSum); !s.ok()) return s;
      grad_.narrow(0, o, c).copy_(recv);
    }
  }
  auto& grad = grad_;

  // 2. Global gradient norm and clipping; a non-finite norm skips the step on every rank.
  // (in buckets: a whole fp64 copy of a 14B model's slice would be 8 bytes per element)
  auto sq = torch::zeros({1}, grad.options().dtype(torch::kFloat64));
  for (int64_t o = 0; o < shard_size_; o += config_.bucket_elements) {
    const int64_t c = std::min(config_.bucket_elements, shard_size_ - o);
    sq.add_(grad.narrow(0, o, c).to(torch::kFloat64).pow(2).sum());
  }
  if (auto s = comm_->AllReduce(sq, ReduceOp::kSum); !s.ok()) return s;
  const double norm = std::sqrt(sq.item<double>());
  if (!std::isfinite(norm)) {
    ++skipped_;
    ZeroGrad();
    return norm;
  }
  if (config_.max_grad_norm > 0) {
    const double coef = config_.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) grad.mul_(coef);
  }

  // 3. AdamW on the shard (the fp32 master), with torch's exact update order.
  ++step_;
  auto param = master_.defined() ? master_ : Flatten(parameters_).narrow(0, shard_begin_, shard_size_).clone();
  param.mul_(1.0 - config_.lr * config_.weight_decay);
  exp_avg_.mul_(config_.beta1).add_(grad, 1.0 - config_.beta1);
  exp_avg_sq_.mul_(config_.beta2).addcmul_(grad, grad, 1.0 - config_.beta2);
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  for (int64_t o = 0; o < shard_size_; o += config_.bucket_elements) {  // bucketed: no slice-sized temporaries
    const int64_t c = std::min(config_.bucket_elements, shard_size_ - o);
    auto denom = (exp_avg_sq_.narrow(0, o, c).sqrt() / std::sqrt(bias_correction2)).add_(config_.eps);
    param.narrow(0, o, c).addcdiv_(exp_avg_.narrow(0, o, c), denom, -config_.lr / bias_correction1);
  }
  if (ema_.defined()) ema_.mul_(config_.ema_decay).add_(param, 1.0 - config_.ema_decay);

  // 4. Replicated parameters: all-gather the updated shards in their dtype. ZeRO-3 units:
  //    the compute slice becomes the (rounded) master; nothing is gathered until next use.
  if (replicated_total_ > 0) {
    if (auto s = GatherReplicated(param.narrow(0, 0, replicated_shard_)); !s.ok()) return s;
  }
  for (int u : units_) sharded_->SyncCompute(u);
  ZeroGrad();
  return norm;
}

absl::StatusOr<std::vector<torch::Tensor>> ShardedAdamW::GatherEma() {
  if (!ema_.defined()) return absl::FailedPreconditionError("the EMA is off (enable it in the optimizer config)");
  std::vector<torch::Tensor> out(parameters_.size());
  if (replicated_total_ > 0) {
    auto flat = torch::empty({comm_->size() * replicated_shard_}, options_);
    if (auto s = GatherShards(ema_.narrow(0, 0, replicated_shard_), flat); !s.ok()) return s;
    auto values = Unflatten(flat);
    for (int i : replicated_) out[i] = values[i].clone();
  }
  for (size_t k = 0; k < units_.size(); ++k) {
    const auto& unit = sharded_->units()[units_[k]];
    auto flat = torch::empty({comm_->size() * unit.shard_size}, options_);
    if (auto s = GatherShards(ema_.narrow(0, unit_state_offsets_[k], unit.shard_size), flat); !s.ok()) return s;
    for (size_t q = 0; q < unit.params.size(); ++q) {
      for (size_t i = 0; i < parameters_.size(); ++i) {
        if (parameters_[i].unsafeGetTensorImpl() == unit.params[q].unsafeGetTensorImpl())
          out[i] = flat.narrow(0, unit.offsets[q], c10::multiply_integers(unit.shapes[q])).view(unit.shapes[q]).clone();
      }
    }
  }
  return out;
}

}  // namespace dancegrpo::hpc
