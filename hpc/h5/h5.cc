#include "hpc/h5/h5.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dancegrpo::hpc::h5 {
namespace {

// HDF5 prints an error stack to stderr by default; we report through Status instead.
const bool kSilenced = [] {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return true;
}();

herr_t CollectInnermost(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

absl::Status Fail(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", LastError()));
}

std::string Shape(const std::vector<hsize_t>& dims) { return absl::StrCat("[", absl::StrJoin(dims, ", "), "]"); }

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    Close();
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
  }
  return *this;
}

void Handle::Close() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

std::string LastError() {
  (void)kSilenced;
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, CollectInnermost, &msg);
  return msg.empty() ? "unknown HDF5 error" : msg;
}

namespace {
absl::StatusOr<Handle> FileAccess(MPI_Comm comm) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (comm != MPI_COMM_NULL && H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL) < 0)
    return Fail("H5Pset_fapl_mpio");
  return fapl;
}
}  // namespace

absl::StatusOr<Handle> CreateFile(const std::string& path, MPI_Comm comm) {
  auto fapl = FileAccess(comm);
  if (!fapl.ok()) return fapl.status();
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl->id()));
  if (!f.valid()) return Fail(absl::StrCat("cannot create HDF5 file ", path));
  return f;
}

absl::StatusOr<Handle> OpenFile(const std::string& path, bool writable, MPI_Comm comm) {
  (void)kSilenced;
  if (access(path.c_str(), R_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an HDF5 file (no HDF5 signature: truncated, overwritten or foreign)"));
  }
  auto fapl = FileAccess(comm);
  if (!fapl.ok()) return fapl.status();
  Handle f(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl->id()));
  if (!f.valid()) return absl::InvalidArgumentError(absl::StrCat("cannot open HDF5 file ", path, ": ", LastError()));
  return f;
}

absl::StatusOr<Handle> CreateGroup(hid_t loc, const std::string& name) {
  Handle g(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!g.valid()) return Fail(absl::StrCat("cannot create group '", name, "'"));
  return g;
}

absl::StatusOr<Handle> OpenGroup(hid_t loc, const std::string& name) {
  if (!Exists(loc, name)) return absl::NotFoundError(absl::StrCat("no group '", name, "'"));
  Handle g(H5Gopen2(loc, name.c_str(), H5P_DEFAULT));
  if (!g.valid()) return Fail(absl::StrCat("cannot open group '", name, "'"));
  return g;
}

bool Exists(hid_t loc, const std::string& name) {
  // H5Lexists fails on intermediate components that are missing; walk the path.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    const std::string prefix = name.substr(0, pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

template <> hid_t NativeType<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t NativeType<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t NativeType<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t NativeType<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t NativeType<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t NativeType<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> hid_t NativeType<uint16_t>() { return H5T_NATIVE_UINT16; }

template <typename T>
absl::Status WriteDataset(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data,
                          int deflate_level) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  if (!space.valid()) return Fail(absl::StrCat("dataspace for '", name, "' ", Shape(dims)));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  hsize_t total = 1;
  for (hsize_t d : dims) total *= d;
  if (deflate_level > 0 && !dims.empty() && total > 0) {
    // One chunk per leading index (per sample), compressed and checksummed.
    std::vector<hsize_t> chunk(dims);
    if (chunk.size() > 1) chunk[0] = 1;
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_fletcher32(dcpl.id());
    H5Pset_deflate(dcpl.id(), deflate_level);
  }
  Handle dset(H5Dcreate2(loc, name.c_str(), NativeType<T>(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT));
  if (!dset.valid()) return Fail(absl::StrCat("cannot create dataset '", name, "'"));
  if (total > 0 && H5Dwrite(dset.id(), NativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    return Fail(absl::StrCat("cannot write dataset '", name, "'"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<hsize_t>> DatasetShape(hid_t loc, const std::string& name) {
  if (!Exists(loc, name)) return absl::NotFoundError(absl::StrCat("no dataset '", name, "'"));
  Handle dset(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) return Fail(absl::StrCat("cannot open dataset '", name, "'"));
  Handle space(H5Dget_space(dset.id()));
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) return Fail(absl::StrCat("dataspace of '", name, "'"));
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return dims;
}

absl::StatusOr<std::vector<float>> ReadFloatRows(hid_t loc, const std::string& name, const std::vector<int64_t>& rows) {
  auto dims = DatasetShape(loc, name);
  if (!dims.ok()) return dims.status();
  if (dims->empty()) return absl::InvalidArgumentError(absl::StrCat("dataset '", name, "' is a scalar, not rows"));
  std::vector<hsize_t> count(*dims), start(dims->size(), 0);
  count[0] = 1;
  hsize_t row_size = 1;
  for (size_t d = 1; d < dims->size(); ++d) row_size *= (*dims)[d];
  Handle dset(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  Handle fspace(H5Dget_space(dset.id()));
  Handle mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  std::vector<float> out(rows.size() * row_size);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || static_cast<hsize_t>(rows[i]) >= (*dims)[0])
      return absl::OutOfRangeError(absl::StrCat("row ", rows[i], " of dataset '", name, "' with ", (*dims)[0], " rows"));
    start[0] = static_cast<hsize_t>(rows[i]);
    H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    if (H5Dread(dset.id(), H5T_NATIVE_FLOAT, mspace.id(), fspace.id(), H5P_DEFAULT, out.data() + i * row_size) < 0)
      return absl::DataLossError(absl::StrCat("row ", rows[i], " of dataset '", name, "' failed to read (",
                                              LastError(), "): the file is corrupt or truncated"));
  }
  return out;
}

template <typename T>
absl::StatusOr<std::vector<T>> ReadDataset(hid_t loc, const std::string& name, std::vector<hsize_t>* dims_out) {
  auto dims = DatasetShape(loc, name);
  if (!dims.ok()) return dims.status();
  Handle dset(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  Handle type(H5Dget_type(dset.id()));
  const H5T_class_t stored = H5Tget_class(type.id());
  const H5T_class_t wanted = std::is_floating_point<T>::value ? H5T_FLOAT : H5T_INTEGER;
  if (stored != wanted) {
    return absl::InvalidArgumentError(absl::StrCat("dataset '", name, "' holds ",
                                                   stored == H5T_FLOAT ? "floats" : "non-float values",
                                                   ", not the expected ", wanted == H5T_FLOAT ? "floats" : "integers"));
  }
  hsize_t total = 1;
  for (hsize_t d : *dims) total *= d;
  std::vector<T> out(total);
  if (total > 0 && H5Dread(dset.id(), NativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    return absl::DataLossError(absl::StrCat("cannot read dataset '", name, "': ", LastError()));
  if (dims_out) *dims_out = *dims;
  return out;
}

#define DGRPO_H5_INSTANTIATE(T)                                                                        \
  template absl::Status WriteDataset<T>(hid_t, const std::string&, const std::vector<hsize_t>&, const T*, \
                                        int);                                                          \
  template absl::StatusOr<std::vector<T>> ReadDataset<T>(hid_t, const std::string&, std::vector<hsize_t>*);
DGRPO_H5_INSTANTIATE(float)
DGRPO_H5_INSTANTIATE(double)
DGRPO_H5_INSTANTIATE(int32_t)
DGRPO_H5_INSTANTIATE(int64_t)
DGRPO_H5_INSTANTIATE(uint8_t)
DGRPO_H5_INSTANTIATE(uint16_t)
DGRPO_H5_INSTANTIATE(uint64_t)
#undef DGRPO_H5_INSTANTIATE

namespace {
Handle VarString() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.id(), H5T_VARIABLE);
  H5Tset_cset(t.id(), H5T_CSET_UTF8);
  return t;
}
}  // namespace

absl::Status WriteStrings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  Handle type = VarString();
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle dset(H5Dcreate2(loc, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!dset.valid()) return Fail(absl::StrCat("cannot create string dataset '", name, "'"));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0 && H5Dwrite(dset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    return Fail(absl::StrCat("cannot write string dataset '", name, "'"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadStrings(hid_t loc, const std::string& name) {
  auto dims = DatasetShape(loc, name);
  if (!dims.ok()) return dims.status();
  if (dims->size() != 1) return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a 1-D string dataset"));
  Handle dset(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  Handle stored(H5Dget_type(dset.id()));
  if (H5Tget_class(stored.id()) != H5T_STRING || H5Tis_variable_str(stored.id()) <= 0)
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' does not hold variable-length strings"));
  Handle type = VarString();
  std::vector<char*> ptrs((*dims)[0], nullptr);
  if (!ptrs.empty() && H5Dread(dset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    return absl::DataLossError(absl::StrCat("cannot read strings '", name, "': ", LastError()));
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  if (!ptrs.empty()) {
    Handle space(H5Dget_space(dset.id()));
    H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, ptrs.data());
  }
  return out;
}

namespace {
absl::Status WriteAttr(hid_t loc, const std::string& name, hid_t type, const void* value) {
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(loc, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.id(), type, value) < 0)
    return Fail(absl::StrCat("cannot write attribute '", name, "'"));
  return absl::OkStatus();
}

absl::StatusOr<Handle> OpenAttr(hid_t loc, const std::string& name) {
  if (H5Aexists(loc, name.c_str()) <= 0) return absl::NotFoundError(absl::StrCat("no attribute '", name, "'"));
  Handle attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
  if (!attr.valid()) return Fail(absl::StrCat("cannot open attribute '", name, "'"));
  return attr;
}
}  // namespace

absl::Status WriteAttribute(hid_t loc, const std::string& name, const std::string& value) {
  Handle type = VarString();
  const char* p = value.c_str();
  return WriteAttr(loc, name, type.id(), &p);
}
absl::Status WriteAttribute(hid_t loc, const std::string& name, int64_t value) {
  return WriteAttr(loc, name, H5T_NATIVE_INT64, &value);
}
absl::Status WriteAttribute(hid_t loc, const std::string& name, double value) {
  return WriteAttr(loc, name, H5T_NATIVE_DOUBLE, &value);
}

absl::StatusOr<std::string> ReadStringAttribute(hid_t loc, const std::string& name) {
  auto attr = OpenAttr(loc, name);
  if (!attr.ok()) return attr.status();
  Handle stored(H5Aget_type(attr->id()));
  if (H5Tget_class(stored.id()) != H5T_STRING || H5Tis_variable_str(stored.id()) <= 0)
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' is not a string"));
  Handle type = VarString();
  char* p = nullptr;
  if (H5Aread(attr->id(), type.id(), &p) < 0) return Fail(absl::StrCat("cannot read attribute '", name, "'"));
  std::string out = p ? p : "";
  H5free_memory(p);
  return out;
}

absl::StatusOr<int64_t> ReadIntAttribute(hid_t loc, const std::string& name) {
  auto attr = OpenAttr(loc, name);
  if (!attr.ok()) return attr.status();
  int64_t v = 0;
  if (H5Aread(attr->id(), H5T_NATIVE_INT64, &v) < 0) return Fail(absl::StrCat("cannot read attribute '", name, "'"));
  return v;
}

absl::StatusOr<double> ReadDoubleAttribute(hid_t loc, const std::string& name) {
  auto attr = OpenAttr(loc, name);
  if (!attr.ok()) return attr.status();
  double v = 0;
  if (H5Aread(attr->id(), H5T_NATIVE_DOUBLE, &v) < 0) return Fail(absl::StrCat("cannot read attribute '", name, "'"));
  return v;
}

}  // namespace dancegrpo::hpc::h5
