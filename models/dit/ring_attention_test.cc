// Ring attention equals attention over the whole sequence: every rank draws the same q, k, v
// [B, H, L, d], keeps its block of the sequence, attends around the ring, and compares its
// block of the output and of the gradients of q, k and v with LocalAttention's on the whole
// sequence (autograd), with and without a key mask, in fp32 and bf16, at 2, 3 and 4 ranks
// (H = 3: no head split, which Ulysses would need).
#include "models/dit/ring_attention.h"

#include <mpi.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "hpc/comm/mpi_communicator.h"

namespace dancegrpo::models {
namespace {

std::shared_ptr<hpc::Communicator> World() { return *hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {60}); }

double RelErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max() / b.to(torch::kFloat).abs().max().clamp_min(1e-12))
      .item<double>();
}

void Check(torch::ScalarType dtype, bool masked, double tol) {
  auto world = World();
  const int n = world->size(), r = world->rank();
  const int64_t B = 2, H = 3, d = 8, block = 5, L = block * n;
  torch::manual_seed(11);
  auto q = torch::randn({B, H, L, d}), k = torch::randn({B, H, L, d}), v = torch::randn({B, H, L, d});
  auto g = torch::randn({B, H, L, d});
  torch::Tensor mask;
  if (masked) {  // every other key of sample 1 and the last three keys of sample 0 masked out
    mask = torch::ones({B, L}, torch::kBool);
    for (int64_t j = 0; j < L; j += 2) mask[1][j] = false;
    for (int64_t j = L - 3; j < L; ++j) mask[0][j] = false;
  }
  // The reference: the whole sequence, in fp32, through autograd.
  auto qr = q.clone().requires_grad_(true), kr = k.clone().requires_grad_(true), vr = v.clone().requires_grad_(true);
  LocalAttention local;
  auto ref = local.Attend(qr, kr, vr, mask);
  (ref * g).sum().backward();
  // This rank's block, in `dtype`.
  auto mine = [&](const torch::Tensor& t) { return t.narrow(2, r * block, block).to(dtype).contiguous(); };
  auto qb = mine(q).requires_grad_(true), kb = mine(k).requires_grad_(true), vb = mine(v).requires_grad_(true);
  RingAttention ring(world);
  auto out = ring.Attend(qb, kb, vb, mask);
  ASSERT_EQ(out.scalar_type(), dtype);
  (out.to(torch::kFloat) * g.narrow(2, r * block, block)).sum().backward();
  const auto slice = [&](const torch::Tensor& t) { return t.narrow(2, r * block, block); };
  EXPECT_LE(RelErr(out, slice(ref)), tol) << "output, rank " << r;
  EXPECT_LE(RelErr(qb.grad(), slice(qr.grad())), tol) << "dq, rank " << r;
  EXPECT_LE(RelErr(kb.grad(), slice(kr.grad())), tol) << "dk, rank " << r;
  EXPECT_LE(RelErr(vb.grad(), slice(vr.grad())), tol) << "dv, rank " << r;
}

TEST(RingAttention, Fp32EqualsWholeSequenceAttention) { Check(torch::kFloat, false, 1e-5); }
TEST(RingAttention, Fp32WithAKeyMask) { Check(torch::kFloat, true, 1e-5); }
// bf16 inputs (rounded) against the fp32 reference: the rounding of q, k, v and the output.
TEST(RingAttention, Bf16WithAKeyMask) { Check(torch::kBFloat16, true, 4e-2); }

TEST(RingAttention, RefusesAMaskOfTheWrongLength) {
  auto world = World();
  RingAttention ring(world);
  auto x = torch::randn({1, 2, 4, 8});
  EXPECT_THROW(ring.Attend(x, x, x, torch::ones({1, 3}, torch::kBool)), c10::Error);
}

}  // namespace
}  // namespace dancegrpo::models
