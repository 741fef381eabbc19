#include "hpc/seqpar.h"

#include <torch/torch.h>

namespace dancegrpo::hpc {
namespace {

torch::Tensor RawAllToAll(const torch::Tensor& x, Communicator& comm, int64_t scatter_dim, int64_t gather_dim) {
  const int n = comm.size();
  TORCH_CHECK(x.size(scatter_dim) % n == 0, "sequence parallel all-to-all: dimension ", scatter_dim, " of size ",
              x.size(scatter_dim), " does not split over ", n, " ranks");
  if (n == 1) return x;
  auto send = torch::stack(x.chunk(n, scatter_dim)).contiguous();  // [n, ...chunk]
  auto recv = torch::empty_like(send);
  const auto status = comm.AllToAll(send.view(-1), recv.view(-1));
  TORCH_CHECK(status.ok(), "sequence parallel all-to-all failed: ", status.ToString());
  return torch::cat(recv.unbind(0), gather_dim);
}

// Autograd IValues cannot hold a raw pointer; the communicator outlives the graph.
int64_t Handle(Communicator* comm) { return reinterpret_cast<int64_t>(comm); }
Communicator* FromHandle(const c10::IValue& v) { return reinterpret_cast<Communicator*>(v.toInt()); }

struct AllToAllFunction : public torch::autograd::Function<AllToAllFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t comm,
                               int64_t scatter_dim, int64_t gather_dim) {
    ctx->saved_data["comm"] = comm;
    ctx->saved_data["scatter"] = scatter_dim;
    ctx->saved_data["gather"] = gather_dim;
    return RawAllToAll(x, *reinterpret_cast<Communicator*>(comm), scatter_dim, gather_dim);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto* comm = FromHandle(ctx->saved_data["comm"]);
    // The inverse exchange: scatter along the gathered dim, gather along the scattered one.
    auto g = RawAllToAll(grad[0].contiguous(), *comm, ctx->saved_data["gather"].toInt(),
                         ctx->saved_data["scatter"].toInt());
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct GatherFunction : public torch::autograd::Function<GatherFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local, int64_t comm,
                               int64_t dim) {
    auto* c = reinterpret_cast<Communicator*>(comm);
    ctx->saved_data["rank"] = static_cast<int64_t>(c->rank());
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["len"] = local.size(dim);
    if (c->size() == 1) return local.clone();
    auto moved = local.movedim(dim, 0).contiguous();  // [len, ...]
    auto sizes = moved.sizes().vec();
    sizes[0] *= c->size();
    auto all = torch::empty(sizes, moved.options());
    const auto status = c->AllGather(moved.view(-1), all.view(-1));
    TORCH_CHECK(status.ok(), "sequence parallel all-gather failed: ", status.ToString());
    return all.movedim(0, dim).contiguous();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const int64_t dim = ctx->saved_data["dim"].toInt(), len = ctx->saved_data["len"].toInt();
    return {grad[0].narrow(dim, ctx->saved_data["rank"].toInt() * len, len).contiguous(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor AllToAll(const torch::Tensor& x, Communicator& comm, int64_t scatter_dim, int64_t gather_dim) {
  return AllToAllFunction::apply(x, Handle(&comm), scatter_dim, gather_dim);
}

torch::Tensor GatherSequence(const torch::Tensor& local, Communicator& comm, int64_t dim) {
  return GatherFunction::apply(local, Handle(&comm), dim);
}

}  // namespace dancegrpo::hpc
