// Autograd-aware collectives for Ulysses sequence parallelism (DeepSpeed-Ulysses).
//
// The sp ranks of one replica hold consecutive slices of each sample's token sequence.
// Around attention, an all-to-all swaps the sequence shard for a head shard
// ([B, H, L/sp, d] -> [B, H/sp, L, d]) so each rank attends over the whole sequence for
// its heads, and a second all-to-all swaps back. The backward of an all-to-all is the
// inverse all-to-all, so gradients flow through unchanged.
//
// Collective: every rank of `comm` must call each function with the same shapes, in the
// same order, in forward and (through autograd) in backward.
#ifndef DANCEGRPO_HPC_SEQPAR_H_
#define DANCEGRPO_HPC_SEQPAR_H_

#include <torch/types.h>

#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

// Splits `x` into comm.size() chunks along `scatter_dim`, sends chunk j to rank j, and
// concatenates the chunks received from ranks 0..n-1 along `gather_dim`. Differentiable.
// Throws c10::Error if scatter_dim's size is not divisible by comm.size().
torch::Tensor AllToAll(const torch::Tensor& x, Communicator& comm, int64_t scatter_dim, int64_t gather_dim);

// Concatenates every rank's `local` along `dim` (rank order). Differentiable under the
// sequence-parallel convention that every rank computes the same loss from the gathered
// tensor: the backward keeps this rank's slice of the gradient, so parameter gradients
// are partial sums over the sequence, completed by the optimizer's sum over ranks.
torch::Tensor GatherSequence(const torch::Tensor& local, Communicator& comm, int64_t dim);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_SEQPAR_H_
