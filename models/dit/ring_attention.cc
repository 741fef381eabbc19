#include "models/dit/ring_attention.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace dancegrpo::models {
namespace {

using hpc::Communicator;
using hpc::PendingCollective;

void Check(const absl::Status& s, const char* what) { TORCH_CHECK(s.ok(), "ring attention: ", what, " failed: ", s.ToString()); }

// Sends `send` to the next rank of the ring and receives the same shapes from the previous one,
// started now (one Communicator::StartSendRecv: MPI started requests, one NCCL group on a
// GPU); Wait() finishes. Tags keep the tensors of one step apart.
class RingStep {
 public:
  RingStep(Communicator& ring, const std::vector<torch::Tensor>& send, int tag_base = 0) {
    const int n = ring.size(), r = ring.rank();
    for (const auto& t : send) recv_.push_back(torch::empty_like(t));
    auto started = ring.StartSendRecv(send, (r + 1) % n, recv_, (r + n - 1) % n, tag_base);
    Check(started.status(), "send/receive");
    pending_ = std::move(*started);
  }
  std::vector<torch::Tensor> Wait() {
    Check(pending_->Wait(), "transfer");
    return recv_;
  }

 private:
  std::vector<torch::Tensor> recv_;
  std::unique_ptr<PendingCollective> pending_;
};

// The scaled scores of the local queries against one key block, masked: [B, H, Lq, Lk].
torch::Tensor Scores(const torch::Tensor& q_scaled, const torch::Tensor& k, const torch::Tensor& key_mask,
                     int64_t block, int64_t block_len) {
  auto s = torch::matmul(q_scaled, k.transpose(-2, -1));
  if (key_mask.numel() > 0) {
    auto m = key_mask.narrow(1, block * block_len, block_len).to(torch::kBool).logical_not();
    s.masked_fill_(m.unsqueeze(1).unsqueeze(1), -std::numeric_limits<float>::infinity());
  }
  return s;
}

int64_t Handle(Communicator* c) { return reinterpret_cast<int64_t>(c); }  // see hpc/seqpar.cc

struct RingFunction : public torch::autograd::Function<RingFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_mask, int64_t handle) {
    auto& ring = *reinterpret_cast<Communicator*>(handle);
    const int n = ring.size(), r = ring.rank();
    const int64_t len = k.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const auto qs = q.to(torch::kFloat) * scale;
    std::vector<torch::Tensor> kv = {k.to(torch::kFloat).contiguous(), v.to(torch::kFloat).contiguous()};
    const float inf = std::numeric_limits<float>::infinity();
    auto m = torch::full({q.size(0), q.size(1), q.size(2), 1}, -inf, qs.options());
    auto l = torch::zeros_like(m);
    auto o = torch::zeros(qs.sizes(), qs.options());
    for (int step = 0; step < n; ++step) {
      const int64_t block = (r - step + n) % n;  // whose keys this rank holds now
      std::unique_ptr<RingStep> next;
      if (step + 1 < n) next = std::make_unique<RingStep>(ring, kv);  // overlaps this block's compute
      auto p = Scores(qs, kv[0], key_mask, block, len);  // the scores, then in place their exp
      auto m_new = torch::maximum(m, std::get<0>(p.max(-1, /*keepdim=*/true)));
      // A query with no key yet (all masked so far) keeps m = -inf: exp against 0 then gives 0.
      auto m_safe = torch::where(torch::isinf(m_new), torch::zeros_like(m_new), m_new);
      p.sub_(m_safe).exp_();  // one [B, H, Lq, Lk] block at a time
      auto alpha = torch::exp(m - m_safe);
      l = l * alpha + p.sum(-1, /*keepdim=*/true);
      o = o * alpha + torch::matmul(p, kv[1]);
      m = m_new;
      if (next) kv = next->Wait();
    }
    // Only a mask can leave a query without keys (one device sync, masked calls only).
    if (key_mask.numel() > 0)
      TORCH_CHECK((l > 0).all().item<bool>(), "ring attention: a query has no key it may attend (key_mask)");
    auto out = o / l;
    auto lse = m + torch::log(l);
    ctx->saved_data["comm"] = handle;
    ctx->save_for_backward({q, k, v, key_mask, out, lse});
    return out.to(q.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto& ring = *reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &key_mask = saved[3], &out = saved[4], &lse = saved[5];
    const int n = ring.size(), r = ring.rank();
    const int64_t len = k.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const auto qs = q.to(torch::kFloat) * scale;
    const auto dout = grad[0].to(torch::kFloat);
    const auto delta = (dout * out).sum(-1, /*keepdim=*/true);  // rowsum(dO o O)
    auto dq = torch::zeros(qs.sizes(), qs.options());
    // Travelling: the block's keys and values, and the gradients every rank adds to them.
    std::vector<torch::Tensor> kv = {k.to(torch::kFloat).contiguous(), v.to(torch::kFloat).contiguous()};
    // The gradients of a block follow it round the ring, each rank adding its queries' share;
    // after n moves they are back with its owner. They travel while the next block computes:
    // at step s the previous rank's sum for this step's block is in flight (`moving`), and is
    // waited for only once this rank's own share of that block is computed.
    std::vector<torch::Tensor> dkv;
    std::unique_ptr<RingStep> moving;
    for (int step = 0; step < n; ++step) {
      const int64_t block = (r - step + n) % n;
      std::unique_ptr<RingStep> next;
      if (step + 1 < n) next = std::make_unique<RingStep>(ring, kv);
      auto p = Scores(qs, kv[0], key_mask, block, len);
      p.sub_(lse).exp_();  // the softmax, [B, H, Lq, Lk]
      auto dv = torch::matmul(p.transpose(-2, -1), dout);
      auto ds = torch::matmul(dout, kv[1].transpose(-2, -1));  // dP, then in place dS
      ds.sub_(delta).mul_(p);  // two score blocks at a time
      p = torch::Tensor();
      dq += torch::matmul(ds, kv[0]);
      auto dk = torch::matmul(ds.transpose(-2, -1), qs);
      ds = torch::Tensor();
      if (moving) {  // the sum of the ranks before this one, for this step's block
        dkv = moving->Wait();
        dkv[0] += dk;
        dkv[1] += dv;
      } else {
        dkv = {std::move(dk), std::move(dv)};
      }
      if (n > 1) moving = std::make_unique<RingStep>(ring, dkv, /*tag_base=*/2);
      if (next) kv = next->Wait();
    }
    if (moving) dkv = moving->Wait();  // this rank's own block, summed over the ring
    dq *= scale;
    return {dq.to(q.scalar_type()), dkv[0].to(k.scalar_type()), dkv[1].to(v.scalar_type()), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor RingAttention::Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& key_mask) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == v.sizes() && k.size(2) == q.size(2),
              "ring attention takes this rank's block of q, k, v [B, H, L/n, d], all of one length");
  TORCH_CHECK(!key_mask.defined() || key_mask.size(1) == k.size(2) * ring_->size(),
              "ring attention: key_mask covers ", key_mask.defined() ? key_mask.size(1) : 0,
              " positions; the sequence has ", k.size(2) * ring_->size());
  // No mask travels as an empty tensor: autograd's apply takes no undefined ones.
  return RingFunction::apply(q, k, v, key_mask.defined() ? key_mask : torch::empty({0}, torch::kBool),
                             Handle(ring_.get()));
}

}  // namespace dancegrpo::models
