#include "hpc/block_runner.h"

#include <torch/torch.h>

#include <utility>

namespace dancegrpo::hpc {
namespace {

void CheckOk(const absl::Status& s) { TORCH_CHECK(s.ok(), "ZeRO-3: ", s.ToString()); }

// What the backward of one checkpointed block needs besides its saved inputs.
struct BlockCall : torch::CustomClassHolder {
  BlockRunner::BlockFunction run;
  ParameterGatherer* gatherer = nullptr;  // outlives the graph (the model holds it)
  int64_t index = 0;
};

// Re-entrant activation checkpointing for one block: forward keeps only the inputs;
// backward gathers the block again (ZeRO-3), recomputes it with gradients enabled and
// back-propagates through it, which accumulates the block's parameter gradients and yields
// the input gradients; then reduce-scatters the block's gradient and releases it.
struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor hidden, at::TensorList shared,
                               c10::intrusive_ptr<BlockCall> call) {
    std::vector<torch::Tensor> saved = {hidden};
    saved.insert(saved.end(), shared.begin(), shared.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["call"] = c10::IValue::make_capsule(c10::intrusive_ptr<torch::CustomClassHolder>(call));
    return call->run(call->index, hidden, shared.vec());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    auto holder = ctx->saved_data["call"].toCapsule();
    auto* call = static_cast<BlockCall*>(holder.get());
    std::vector<torch::Tensor> in;
    for (const auto& s : saved) in.push_back(s.detach().requires_grad_(s.requires_grad()));
    if (call->gatherer) CheckOk(call->gatherer->Gather(static_cast<int>(call->index)));  // whole again
    torch::Tensor out;
    {
      torch::AutoGradMode enable(true);
      out = call->run(call->index, in[0], std::vector<torch::Tensor>(in.begin() + 1, in.end()));
    }
    torch::autograd::backward({out}, {grad_out[0]});
    if (call->gatherer) {  // the block's gradient is complete: sum it into the shards, free all
      CheckOk(call->gatherer->ReduceGradients(static_cast<int>(call->index)));
      call->gatherer->Release(static_cast<int>(call->index));
    }
    torch::autograd::variable_list grads;
    for (const auto& t : in) grads.push_back(t.grad());
    grads.emplace_back();  // the call
    return grads;
  }
};

}  // namespace

torch::Tensor BlockRunner::Run(const std::vector<torch::nn::Module*>& blocks, torch::Tensor hidden,
                               const std::vector<torch::Tensor>& shared, const BlockFunction& run) {
  const bool grad = torch::GradMode::is_enabled();
  const bool recompute = checkpointing() && grad;
  bool shared_need_grad = false;
  for (const auto& t : shared) shared_need_grad = shared_need_grad || t.requires_grad();
  const int64_t n = static_cast<int64_t>(blocks.size());
  for (int64_t i = 0; i < n; ++i) {
    bool trains = false;  // frozen leading blocks (--trainable) need no backward at all
    for (const auto& p : blocks[i]->parameters()) trains = trains || p.requires_grad();
    const bool inputs_need_grad = hidden.requires_grad() || shared_need_grad;
    // A re-entrant checkpointed block only back-propagates into its parameters when one of
    // its tensor inputs needs a gradient; with everything before it frozen none would.
    if (recompute && trains && !inputs_need_grad) hidden = hidden.detach().requires_grad_(true);
    const bool backward = grad && (trains || inputs_need_grad);
    if (shards_) {
      CheckOk(shards_->Gather(static_cast<int>(i)));
      if (i + 1 < n) shards_->Prefetch(static_cast<int>(i + 1));
    }
    if (backward && recompute) {
      auto call = c10::make_intrusive<BlockCall>();
      call->run = run;
      call->gatherer = shards_.get();
      call->index = i;
      hidden = CheckpointedBlock::apply(hidden, at::TensorList(shared), std::move(call));
    } else if (backward) {
      hidden = run(i, hidden, shared);
    } else {
      torch::NoGradGuard no_grad;
      hidden = run(i, hidden, shared);
    }
    if (shards_) shards_->Release(static_cast<int>(i));
  }
  return hidden;
}

}  // namespace dancegrpo::hpc
