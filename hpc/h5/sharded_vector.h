// Collective parallel-HDF5 I/O of one long fp32 vector stored by global offset: each rank
// writes (or reads) the slice it owns, whatever the number of ranks. This is how sharded
// parameters and optimizer state are checkpointed so that a job can restart on a
// different number of ranks.
//
// Datasets are chunked with HDF5's Fletcher-32 checksum filter, so every chunk read back
// is verified; a flipped byte is reported as a read error naming the dataset.
#ifndef DANCEGRPO_HPC_H5_SHARDED_VECTOR_H_
#define DANCEGRPO_HPC_H5_SHARDED_VECTOR_H_

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo::hpc::h5 {

// Collective over the file's communicator: every rank calls it with the same `name` and
// `total`; rank r passes the elements [begin, begin + count) (count may be 0).
absl::Status WriteShardedVector(hid_t file, const std::string& name, int64_t total, int64_t begin,
                                const float* data, int64_t count);

// The same, for a rank that owns several ranges: `data` holds the ranges' elements end to
// end, in the order given (ranges sorted by begin, not overlapping).
struct Range {
  int64_t begin;
  int64_t count;
};
absl::Status WriteShardedRanges(hid_t file, const std::string& name, int64_t total, const std::vector<Range>& ranges,
                                const float* data);
// Reads the ranges (independent), end to end.
absl::StatusOr<std::vector<float>> ReadVectorRanges(hid_t file, const std::string& name,
                                                    const std::vector<Range>& ranges);

// Reads elements [begin, begin + count) of a 1-D fp32 dataset; independent (not
// collective). Fails naming the dataset on a checksum mismatch or a short dataset.
absl::StatusOr<std::vector<float>> ReadVectorSlice(hid_t file, const std::string& name, int64_t begin,
                                                   int64_t count);

// Whole-dataset Fletcher-32-checked write of a small array (serial or identical on every
// rank). Used for the checkpoint's metadata arrays.
template <typename T>
absl::Status WriteChecked(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data);

}  // namespace dancegrpo::hpc::h5

#endif  // DANCEGRPO_HPC_H5_SHARDED_VECTOR_H_
