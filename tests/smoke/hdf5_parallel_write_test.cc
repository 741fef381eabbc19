// Parallel HDF5 smoke test: every rank writes its block of rows of one dataset in a
// collective MPI-IO write; every rank then reads the whole file back and checks each
// value exactly.
#include <hdf5.h>
#include <mpi.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

constexpr hsize_t kRowsPerRank = 5;
constexpr hsize_t kCols = 7;

double Expected(hsize_t row, hsize_t col) { return row * 1000.0 + col + 0.25; }

TEST(Hdf5Smoke, CollectiveWriteReadsBackExactly) {
#ifndef H5_HAVE_PARALLEL
  FAIL() << "HDF5 was built without MPI-IO; install libhdf5-openmpi-dev";
#endif
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/parallel_smoke.h5";

  // Write, collectively.
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  ASSERT_GE(H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL), 0);
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  ASSERT_GE(file, 0) << path;
  const hsize_t dims[2] = {kRowsPerRank * size, kCols};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t dset = H5Dcreate2(file, "values", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  const hsize_t start[2] = {kRowsPerRank * rank, 0};
  const hsize_t count[2] = {kRowsPerRank, kCols};
  ASSERT_GE(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr), 0);
  hid_t memspace = H5Screate_simple(2, count, nullptr);
  std::vector<double> mine(kRowsPerRank * kCols);
  for (hsize_t r = 0; r < kRowsPerRank; ++r)
    for (hsize_t c = 0; c < kCols; ++c) mine[r * kCols + c] = Expected(start[0] + r, c);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  ASSERT_GE(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), 0);
  ASSERT_GE(H5Dwrite(dset, H5T_NATIVE_DOUBLE, memspace, space, dxpl, mine.data()), 0);
  H5Pclose(dxpl);
  H5Sclose(memspace);
  H5Sclose(space);
  H5Dclose(dset);
  ASSERT_GE(H5Fclose(file), 0);
  H5Pclose(fapl);

  MPI_Barrier(MPI_COMM_WORLD);

  // Read everything back, on every rank.
  hid_t rfile = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(rfile, 0);
  hid_t rdset = H5Dopen2(rfile, "values", H5P_DEFAULT);
  hid_t rspace = H5Dget_space(rdset);
  hsize_t rdims[2] = {0, 0};
  ASSERT_EQ(H5Sget_simple_extent_ndims(rspace), 2);
  H5Sget_simple_extent_dims(rspace, rdims, nullptr);
  ASSERT_EQ(rdims[0], kRowsPerRank * size);
  ASSERT_EQ(rdims[1], kCols);
  std::vector<double> all(rdims[0] * rdims[1], -1.0);
  ASSERT_GE(H5Dread(rdset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()), 0);
  for (hsize_t r = 0; r < rdims[0]; ++r)
    for (hsize_t c = 0; c < kCols; ++c)
      ASSERT_EQ(all[r * kCols + c], Expected(r, c)) << "row " << r << " col " << c;
  H5Sclose(rspace);
  H5Dclose(rdset);
  H5Fclose(rfile);
}

}  // namespace
