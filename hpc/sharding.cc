#include "hpc/sharding.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

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
  if (c.bucket_elements < 1) return absl::InvalidArgumentError("bucket_elements must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ShardedAdamW>> ShardedAdamW::Create(std::vector<torch::Tensor> parameters,
                                                                   std::shared_ptr<Communicator> comm,
                                                                   const AdamWConfig& config) {
  if (!comm) return absl::InvalidArgumentError("ShardedAdamW needs a communicator");
  if (auto s = ValidateAdamWConfig(config); !s.ok()) return s;
  std::unique_ptr<ShardedAdamW> o(new ShardedAdamW());
  o->config_ = config;
  o->comm_ = std::move(comm);
  o->parameters_ = std::move(parameters);
  o->options_ = torch::TensorOptions().dtype(torch::kFloat32);
  if (!o->parameters_.empty()) o->options_ = o->options_.device(o->parameters_[0].device());
  for (const auto& p : o->parameters_) {
    const auto t = p.scalar_type();
    if (t != o->parameters_[0].scalar_type() || p.device() != o->parameters_[0].device() ||
        (t != torch::kFloat32 && t != torch::kBFloat16 && t != torch::kFloat16))
      return absl::InvalidArgumentError(absl::StrCat(
          "ShardedAdamW takes parameters of one floating dtype (fp32, or bf16/fp16 compute copies) on one device; "
          "got ", c10::toString(t), " on ", p.device().str(), " beside ", c10::toString(o->parameters_[0].scalar_type()),
          " on ", o->parameters_[0].device().str()));
    o->offsets_.push_back(o->total_);
    o->total_ += p.numel();
  }
  // Every rank must agree on the layout, or the shards would silently misalign.
  auto count = torch::tensor({o->total_, static_cast<int64_t>(o->parameters_.size())}, torch::kInt64);
  auto mx = count.clone(), mn = count.clone();
  if (auto s = o->comm_->AllReduce(mx, ReduceOp::kMax); !s.ok()) return s;
  if (auto s = o->comm_->AllReduce(mn, ReduceOp::kMin); !s.ok()) return s;
  if (!torch::equal(mx, mn))
    return absl::FailedPreconditionError(absl::StrCat("ranks disagree on the parameters (this rank: ",
                                                      o->parameters_.size(), " tensors, ", o->total_,
                                                      " elements); build the same model on every rank"));
  const int n = o->comm_->size();
  o->shard_size_ = (o->total_ + n - 1) / n;
  o->shard_begin_ = o->comm_->rank() * o->shard_size_;
  o->exp_avg_ = torch::zeros({o->shard_size_}, o->options_);
  o->exp_avg_sq_ = torch::zeros({o->shard_size_}, o->options_);
  const bool compute_copies = !o->parameters_.empty() && o->parameters_[0].scalar_type() != torch::kFloat32;
  if (compute_copies || config.ema) {
    auto shard = o->Flatten(o->parameters_).narrow(0, o->shard_begin_, o->shard_size_).clone();
    if (compute_copies) o->master_ = shard;
    if (config.ema) o->ema_ = shard.clone();
  }
  return o;
}

int64_t ShardedAdamW::state_bytes() const {
  auto n = [](const torch::Tensor& t) { return t.defined() ? t.numel() : 0; };
  return (n(exp_avg_) + n(exp_avg_sq_) + n(ema_) + n(master_)) * 4;
}

torch::Tensor ShardedAdamW::MasterShard() const {
  if (master_.defined()) return master_;
  return Flatten(parameters_).narrow(0, shard_begin_, shard_size_);
}

void ShardedAdamW::LoadFlat(const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  auto values = Unflatten(flat.to(options_));
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].copy_(values[i]);
  if (master_.defined()) {  // this rank's slice; the padding past total_ stays zero
    master_.zero_();
    const int64_t count = std::max<int64_t>(0, std::min(shard_begin_ + shard_size_, total_) - shard_begin_);
    if (count > 0) master_.narrow(0, 0, count).copy_(flat.narrow(0, shard_begin_, count));
  }
}

torch::Tensor ShardedAdamW::Flatten(const std::vector<torch::Tensor>& tensors) const {
  auto flat = torch::zeros({shard_size_ * comm_->size()}, options_);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].defined()) flat.narrow(0, offsets_[i], tensors[i].numel()).copy_(tensors[i].reshape(-1));
  }
  return flat;
}

std::vector<torch::Tensor> ShardedAdamW::Unflatten(const torch::Tensor& flat) const {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < parameters_.size(); ++i)
    out.push_back(flat.narrow(0, offsets_[i], parameters_[i].numel()).view(parameters_[i].sizes()));
  return out;
}

void ShardedAdamW::ZeroGrad() {
  for (auto& p : parameters_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

absl::Status ShardedAdamW::GatherShards(const torch::Tensor& shard, torch::Tensor& flat) {
  const int n = comm_->size();
  auto grid = flat.view({n, shard_size_});
  for (int64_t o = 0; o < shard_size_; o += config_.bucket_elements) {
    const int64_t c = std::min(config_.bucket_elements, shard_size_ - o);
    auto send = shard.narrow(0, o, c).contiguous();
    auto recv = torch::empty({n * c}, send.options());
    if (auto s = comm_->AllGather(send, recv); !s.ok()) return s;
    grid.narrow(1, o, c).copy_(recv.view({n, c}));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> ShardedAdamW::Step() {
  torch::NoGradGuard no_grad;
  const int n = comm_->size();
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters_) grads.push_back(p.grad());
  auto flat_grad = Flatten(grads).view({n, shard_size_});
  if (config_.reduce_dtype != torch::kFloat32) flat_grad = flat_grad.to(config_.reduce_dtype);

  // 1. Reduce-scatter the gradients, bucket by bucket (in reduce_dtype), into fp32.
  auto grad = torch::empty({shard_size_}, options_);
  for (int64_t o = 0; o < shard_size_; o += config_.bucket_elements) {
    const int64_t c = std::min(config_.bucket_elements, shard_size_ - o);
    auto send = flat_grad.narrow(1, o, c).contiguous();
    auto recv = torch::empty({c}, send.options());
    if (auto s = comm_->ReduceScatter(send, recv, ReduceOp::kSum); !s.ok()) return s;
    grad.narrow(0, o, c).copy_(recv);
  }

  // 2. Global gradient norm and clipping; a non-finite norm skips the step on every rank.
  auto sq = grad.to(torch::kFloat64).pow(2).sum().reshape({1});
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
  auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bias_correction2)).add_(config_.eps);
  param.addcdiv_(exp_avg_, denom, -config_.lr / bias_correction1);
  if (ema_.defined()) ema_.mul_(config_.ema_decay).add_(param, 1.0 - config_.ema_decay);

  // 4. All-gather the updated shards, in the parameters' dtype, into the parameters.
  const auto param_dtype = parameters_.empty() ? torch::kFloat32 : parameters_[0].scalar_type();
  auto flat = torch::empty({n * shard_size_}, options_.dtype(param_dtype));
  if (auto s = GatherShards(param.to(param_dtype), flat); !s.ok()) return s;
  auto updated = Unflatten(flat);
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].copy_(updated[i]);
  ZeroGrad();
  return norm;
}

absl::StatusOr<std::vector<torch::Tensor>> ShardedAdamW::GatherEma() {
  if (!ema_.defined()) return absl::FailedPreconditionError("the EMA is off (enable it in the optimizer config)");
  auto flat = torch::empty({comm_->size() * shard_size_}, options_);
  if (auto s = GatherShards(ema_, flat); !s.ok()) return s;
  std::vector<torch::Tensor> out;
  for (auto& t : Unflatten(flat)) out.push_back(t.clone());
  return out;
}

}  // namespace dancegrpo::hpc
