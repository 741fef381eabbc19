#include "hpc/sharding.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {

absl::StatusOr<std::unique_ptr<ShardedAdamW>> ShardedAdamW::Create(std::vector<torch::Tensor> parameters,
                                                                   std::shared_ptr<Communicator> comm,
                                                                   const AdamWConfig& config) {
  if (!comm) return absl::InvalidArgumentError("ShardedAdamW needs a communicator");
  if (config.bucket_elements < 1) return absl::InvalidArgumentError("bucket_elements must be >= 1");
  std::unique_ptr<ShardedAdamW> o(new ShardedAdamW());
  o->config_ = config;
  o->comm_ = std::move(comm);
  o->parameters_ = std::move(parameters);
  for (const auto& p : o->parameters_) {
    if (p.scalar_type() != torch::kFloat32)
      return absl::InvalidArgumentError("ShardedAdamW keeps fp32 parameters; got " +
                                        std::string(c10::toString(p.scalar_type())));
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
  o->exp_avg_ = torch::zeros({o->shard_size_});
  o->exp_avg_sq_ = torch::zeros({o->shard_size_});
  if (config.ema) o->ema_ = o->Flatten(o->parameters_).narrow(0, o->shard_begin_, o->shard_size_).clone();
  return o;
}

int64_t ShardedAdamW::state_bytes() const {
  return (exp_avg_.numel() + exp_avg_sq_.numel() + (ema_.defined() ? ema_.numel() : 0)) * 4;
}

torch::Tensor ShardedAdamW::Flatten(const std::vector<torch::Tensor>& tensors) const {
  auto flat = torch::zeros({shard_size_ * comm_->size()});
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
    auto recv = torch::empty({n * c});
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
  const auto flat_grad = Flatten(grads).view({n, shard_size_});

  // 1. Reduce-scatter the gradients, bucket by bucket.
  auto grad = torch::empty({shard_size_});
  for (int64_t o = 0; o < shard_size_; o += config_.bucket_elements) {
    const int64_t c = std::min(config_.bucket_elements, shard_size_ - o);
    auto send = flat_grad.narrow(1, o, c).contiguous();
    auto recv = torch::empty({c});
    if (auto s = comm_->ReduceScatter(send, recv, ReduceOp::kSum); !s.ok()) return s;
    grad.narrow(0, o, c).copy_(recv);
  }

  // 2. Global gradient norm and clipping.
  auto sq = grad.to(torch::kFloat64).pow(2).sum().reshape({1});
  if (auto s = comm_->AllReduce(sq, ReduceOp::kSum); !s.ok()) return s;
  const double norm = std::sqrt(sq.item<double>());
  if (config_.max_grad_norm > 0) {
    const double coef = config_.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) grad.mul_(coef);
  }

  // 3. AdamW on the shard, with torch's exact update order.
  ++step_;
  auto param = Flatten(parameters_).narrow(0, shard_begin_, shard_size_).clone();
  param.mul_(1.0 - config_.lr * config_.weight_decay);
  exp_avg_.mul_(config_.beta1).add_(grad, 1.0 - config_.beta1);
  exp_avg_sq_.mul_(config_.beta2).addcmul_(grad, grad, 1.0 - config_.beta2);
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bias_correction2)).add_(config_.eps);
  param.addcdiv_(exp_avg_, denom, -config_.lr / bias_correction1);
  if (ema_.defined()) ema_.mul_(config_.ema_decay).add_(param, 1.0 - config_.ema_decay);

  // 4. All-gather the updated shards into the parameters.
  auto flat = torch::empty({n * shard_size_});
  if (auto s = GatherShards(param, flat); !s.ok()) return s;
  auto updated = Unflatten(flat);
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].copy_(updated[i]);
  ZeroGrad();
  return norm;
}

absl::StatusOr<std::vector<torch::Tensor>> ShardedAdamW::GatherEma() {
  if (!ema_.defined()) return absl::FailedPreconditionError("the EMA is off (enable it in the optimizer config)");
  auto flat = torch::empty({comm_->size() * shard_size_});
  if (auto s = GatherShards(ema_, flat); !s.ok()) return s;
  std::vector<torch::Tensor> out;
  for (auto& t : Unflatten(flat)) out.push_back(t.clone());
  return out;
}

}  // namespace dancegrpo::hpc
