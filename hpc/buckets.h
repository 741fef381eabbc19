// The size of one bucketed collective: the reduce-scatters and all-gathers with which ZeRO-2
// and ZeRO-3 move gradients and parameters (hpc/sharding.h, hpc/zero3.h), and the optimizer
// step's bucketed temporaries. One rule for them and for the memory planner.
//
// A bucket is a fixed number of elements for all ranks together (32 MB of fp32), not per rank:
// with a per-rank count the message grew with the world (N x 16 MB), and Open MPI's
// non-blocking reduce-scatter (libnbc: a binomial-tree reduce to rank 0, then a linear scatter)
// holds whole-message temporaries on the tree's inner ranks. At 8 ranks that was 0.30 GB more
// on rank 0 than on a leaf (docs/experiments/2026-12-04-usp.md).
#ifndef DANCEGRPO_HPC_BUCKETS_H_
#define DANCEGRPO_HPC_BUCKETS_H_

#include <algorithm>
#include <cstdint>

namespace dancegrpo::hpc {

// Elements of one collective's message, all ranks together.
inline constexpr int64_t kBucketMessageElements = int64_t{1} << 23;
// ... and at most this many per rank (one or two ranks).
inline constexpr int64_t kMaxBucketElementsPerRank = int64_t{1} << 22;

// Elements per rank of one bucketed collective among `ranks` ranks (>= 1).
inline int64_t BucketElementsPerRank(int ranks) {
  return std::max<int64_t>(1, std::min(kMaxBucketElementsPerRank, kBucketMessageElements / std::max(1, ranks)));
}

// Whole-message temporaries a rank may hold inside one reduce-scatter of `message_bytes` on
// the CPU (MPI): libnbc's tree reduce keeps two on its root (measured: rank 0 of 8 held 2.2
// messages above a leaf). NCCL reduces in place on the GPU: none.
inline int64_t ReduceScatterTemporaryBytes(int64_t message_bytes, int ranks, bool cuda) {
  return (cuda || ranks < 2) ? 0 : 2 * message_bytes;
}

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_BUCKETS_H_
