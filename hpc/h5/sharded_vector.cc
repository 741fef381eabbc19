#include "hpc/h5/sharded_vector.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "hpc/h5/h5.h"

namespace dancegrpo::hpc::h5 {
namespace {
constexpr hsize_t kChunk = 1 << 18;  // elements per chunk (1 MiB of fp32)
}

absl::Status WriteShardedVector(hid_t file, const std::string& name, int64_t total, int64_t begin, const float* data,
                                int64_t count) {
  return WriteShardedRanges(file, name, total, {Range{begin, count}}, data);
}

namespace {
// Selects the ranges in `fspace` (a union: HDF5 visits it in increasing offset, hence the
// sorted ranges); returns the element count (0: nothing selected).
int64_t SelectRanges(hid_t fspace, const std::vector<Range>& ranges) {
  int64_t n = 0;
  H5Sselect_none(fspace);
  for (const auto& r : ranges) {
    if (r.count <= 0) continue;
    const hsize_t start[1] = {static_cast<hsize_t>(r.begin)}, count[1] = {static_cast<hsize_t>(r.count)};
    H5Sselect_hyperslab(fspace, n == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start, nullptr, count, nullptr);
    n += r.count;
  }
  return n;
}
}  // namespace

absl::Status WriteShardedRanges(hid_t file, const std::string& name, int64_t total, const std::vector<Range>& ranges,
                                const float* data) {
  const hsize_t dims[1] = {static_cast<hsize_t>(total)};
  Handle space(H5Screate_simple(1, dims, nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  const hsize_t chunk[1] = {std::max<hsize_t>(1, std::min<hsize_t>(kChunk, dims[0]))};
  H5Pset_chunk(dcpl.id(), 1, chunk);
  H5Pset_fletcher32(dcpl.id());
  Handle dset(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT));
  if (!dset.valid()) return absl::InternalError(absl::StrCat("cannot create '", name, "': ", LastError()));
  Handle fspace(H5Dget_space(dset.id()));
  const int64_t count = SelectRanges(fspace.id(), ranges);
  const hsize_t n[1] = {static_cast<hsize_t>(std::max<int64_t>(count, 1))};
  Handle mspace(H5Screate_simple(1, n, nullptr));
  if (count == 0) H5Sselect_none(mspace.id());
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER));
  // Filtered (checksummed) datasets must be written collectively in parallel HDF5.
  Handle fapl(H5Fget_access_plist(file));
  if (H5Pget_driver(fapl.id()) == H5FD_MPIO) H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE);
  const float dummy = 0;
  if (H5Dwrite(dset.id(), H5T_NATIVE_FLOAT, mspace.id(), fspace.id(), dxpl.id(), count > 0 ? data : &dummy) < 0)
    return absl::InternalError(absl::StrCat("cannot write '", name, "' (", ranges.size(), " ranges, ", count,
                                            " elements): ", LastError()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ReadVectorRanges(hid_t file, const std::string& name,
                                                    const std::vector<Range>& ranges) {
  auto dims = DatasetShape(file, name);
  if (!dims.ok()) return dims.status();
  int64_t end = 0;
  for (const auto& r : ranges) end = std::max(end, r.begin + r.count);
  if (dims->size() != 1 || static_cast<int64_t>((*dims)[0]) < end)
    return absl::DataLossError(absl::StrCat("dataset '", name, "' has ", dims->empty() ? 0 : (*dims)[0],
                                            " elements; expected at least ", end));
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  Handle fspace(H5Dget_space(dset.id()));
  const int64_t count = SelectRanges(fspace.id(), ranges);
  std::vector<float> out(count);
  if (count == 0) return out;
  const hsize_t n[1] = {static_cast<hsize_t>(count)};
  Handle mspace(H5Screate_simple(1, n, nullptr));
  if (H5Dread(dset.id(), H5T_NATIVE_FLOAT, mspace.id(), fspace.id(), H5P_DEFAULT, out.data()) < 0)
    return absl::DataLossError(absl::StrCat("dataset '", name, "' failed to read (", LastError(),
                                            "): the file is corrupt or truncated"));
  return out;
}

absl::StatusOr<std::vector<float>> ReadVectorSlice(hid_t file, const std::string& name, int64_t begin, int64_t count) {
  auto dims = DatasetShape(file, name);
  if (!dims.ok()) return dims.status();
  if (dims->size() != 1 || static_cast<int64_t>((*dims)[0]) < begin + count)
    return absl::DataLossError(absl::StrCat("dataset '", name, "' has ", dims->empty() ? 0 : (*dims)[0],
                                            " elements; expected at least ", begin + count));
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  Handle fspace(H5Dget_space(dset.id()));
  const hsize_t start[1] = {static_cast<hsize_t>(begin)}, n[1] = {static_cast<hsize_t>(count)};
  std::vector<float> out(count);
  if (count == 0) return out;
  H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start, nullptr, n, nullptr);
  Handle mspace(H5Screate_simple(1, n, nullptr));
  if (H5Dread(dset.id(), H5T_NATIVE_FLOAT, mspace.id(), fspace.id(), H5P_DEFAULT, out.data()) < 0)
    return absl::DataLossError(absl::StrCat("dataset '", name, "' failed to read (", LastError(),
                                            "): the file is corrupt or truncated"));
  return out;
}

template <typename T>
absl::Status WriteChecked(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  std::vector<hsize_t> chunk(dims);
  for (auto& c : chunk) c = std::max<hsize_t>(c, 1);
  H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
  H5Pset_fletcher32(dcpl.id());
  Handle dset(H5Dcreate2(loc, name.c_str(), NativeType<T>(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT));
  if (!dset.valid()) return absl::InternalError(absl::StrCat("cannot create '", name, "': ", LastError()));
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER));
  Handle file(H5Iget_file_id(loc));
  Handle fapl(H5Fget_access_plist(file.id()));
  if (H5Pget_driver(fapl.id()) == H5FD_MPIO) H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE);
  if (H5Dwrite(dset.id(), NativeType<T>(), H5S_ALL, H5S_ALL, dxpl.id(), data) < 0)
    return absl::InternalError(absl::StrCat("cannot write '", name, "': ", LastError()));
  return absl::OkStatus();
}

template absl::Status WriteChecked<float>(hid_t, const std::string&, const std::vector<hsize_t>&, const float*);
template absl::Status WriteChecked<int64_t>(hid_t, const std::string&, const std::vector<hsize_t>&, const int64_t*);
template absl::Status WriteChecked<double>(hid_t, const std::string&, const std::vector<hsize_t>&, const double*);
template absl::Status WriteChecked<uint8_t>(hid_t, const std::string&, const std::vector<hsize_t>&, const uint8_t*);

}  // namespace dancegrpo::hpc::h5
