// Thin checked wrappers over the HDF5 C API, in the manner of HighFive: RAII handles that
// close themselves, typed datasets and attributes, and absl::Status errors that name the
// file, the object and HDF5's own reason. HDF5's automatic error printing is switched off;
// the reason is carried in the Status instead.
//
// Files may be opened serially or, with an MPI communicator, through MPI-IO. In the
// parallel case every rank of the communicator must make the same sequence of calls that
// create or open objects (HDF5 metadata operations are collective).
#ifndef DANCEGRPO_HPC_H5_H5_H_
#define DANCEGRPO_HPC_H5_H5_H_

#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo::hpc::h5 {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Close(); }

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void Close();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// HDF5's innermost error message for the last failed call on this thread.
std::string LastError();

// Creates (truncating) or opens a file. `comm` = MPI_COMM_NULL opens it serially.
absl::StatusOr<Handle> CreateFile(const std::string& path, MPI_Comm comm = MPI_COMM_NULL);
absl::StatusOr<Handle> OpenFile(const std::string& path, bool writable = false,
                                MPI_Comm comm = MPI_COMM_NULL);
absl::StatusOr<Handle> CreateGroup(hid_t loc, const std::string& name);
absl::StatusOr<Handle> OpenGroup(hid_t loc, const std::string& name);
bool Exists(hid_t loc, const std::string& name);

// Element types that datasets and attributes are written as.
template <typename T>
hid_t NativeType();

// Writes a whole dataset from a contiguous buffer of prod(dims) elements (serial files,
// or collective where every rank writes the same data). With deflate_level > 0 the data
// is chunked per leading index, compressed and Fletcher-32 checksummed (verified on read).
template <typename T>
absl::Status WriteDataset(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims,
                          const T* data, int deflate_level = 0);

// Reads a whole dataset; `dims` receives its shape. Fails if the stored element class
// differs (e.g. reading integers as floats) or the dataset is missing.
template <typename T>
absl::StatusOr<std::vector<T>> ReadDataset(hid_t loc, const std::string& name,
                                           std::vector<hsize_t>* dims = nullptr);

// Rows `rows` (indices along the first dimension, in the order given, repeats allowed) of a
// float dataset of any rank, read one hyperslab each, concatenated. Fails on an index out of
// range or a failed read (a truncated or corrupt file).
absl::StatusOr<std::vector<float>> ReadFloatRows(hid_t loc, const std::string& name, const std::vector<int64_t>& rows);

// Shape of a dataset without reading it.
absl::StatusOr<std::vector<hsize_t>> DatasetShape(hid_t loc, const std::string& name);

// Variable-length UTF-8 string datasets (1-D).
absl::Status WriteStrings(hid_t loc, const std::string& name, const std::vector<std::string>& values);
absl::StatusOr<std::vector<std::string>> ReadStrings(hid_t loc, const std::string& name);

// Scalar attributes on a file, group or dataset.
absl::Status WriteAttribute(hid_t loc, const std::string& name, const std::string& value);
absl::Status WriteAttribute(hid_t loc, const std::string& name, int64_t value);
absl::Status WriteAttribute(hid_t loc, const std::string& name, double value);
absl::StatusOr<std::string> ReadStringAttribute(hid_t loc, const std::string& name);
absl::StatusOr<int64_t> ReadIntAttribute(hid_t loc, const std::string& name);
absl::StatusOr<double> ReadDoubleAttribute(hid_t loc, const std::string& name);

}  // namespace dancegrpo::hpc::h5

#endif  // DANCEGRPO_HPC_H5_H5_H_
