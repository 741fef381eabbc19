// doctor: checks that a node (or an allocation, under mpirun) can run DanceGRPO-HPC.
//   mpirun -np 2 bazel-bin/dancegrpo/tools/doctor --out=/tmp/doctor
// Every rank reports its libtorch build and measured fp32 GEMM throughput; the ranks
// all-reduce their ids over MPI, write one HDF5 file collectively and read it back, and
// try the NCCL bootstrap. Exit code 0 only if every check that can run here passes.
#include <hdf5.h>
#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "hpc/mpi_error.h"
#include "hpc/nccl_bootstrap.h"

DEFINE_string(out, "/tmp/dancegrpo-doctor", "directory for the HDF5 check file");
DEFINE_int32(gemm_size, 512, "matrix size of the GEMM throughput check");

namespace {

double GemmGflops(int n) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::matmul(a, b);  // warm-up
  int reps = 0;
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0;
  do {
    c = torch::matmul(a, b);
    ++reps;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (seconds < 0.5);
  return 2.0 * n * n * n * reps / seconds / 1e9;
}

bool Hdf5RoundTrip(const std::string& path, int rank, int size) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (file < 0) return false;
  hsize_t dims[1] = {static_cast<hsize_t>(size)};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t dset = H5Dcreate2(file, "rank", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t start[1] = {static_cast<hsize_t>(rank)}, count[1] = {1};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem = H5Screate_simple(1, count, nullptr);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  const bool wrote = H5Dwrite(dset, H5T_NATIVE_INT, mem, space, dxpl, &rank) >= 0;
  H5Pclose(dxpl);
  H5Sclose(mem);
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<int> back(size, -1);
  hid_t rfile = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (rfile < 0) return false;
  hid_t rdset = H5Dopen2(rfile, "rank", H5P_DEFAULT);
  const bool read = H5Dread(rdset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()) >= 0;
  H5Dclose(rdset);
  H5Fclose(rfile);
  bool ok = wrote && read;
  for (int r = 0; r < size; ++r) ok = ok && back[r] == r;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("checks MPI, libtorch, parallel HDF5 and NCCL on this allocation");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  dancegrpo::hpc::UseReturnErrorsOn(MPI_COMM_WORLD);
  int failures = 0;

  const double gflops = GemmGflops(FLAGS_gemm_size);
  std::printf("[rank %d/%d] libtorch %d.%d, %d intra-op threads, fp32 GEMM %d^3: %.1f GFLOP/s\n", rank,
              size, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, at::get_num_threads(), FLAGS_gemm_size,
              gflops);
  std::fflush(stdout);

  long long mine = rank, sum = -1;
  auto st = dancegrpo::hpc::MpiCall(MPI_Allreduce(&mine, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD),
                                    "MPI_Allreduce");
  const bool mpi_ok = st.ok() && sum == 1LL * size * (size - 1) / 2;
  failures += !mpi_ok;

  const std::string path = FLAGS_out + "/doctor.h5";
  if (rank == 0) {
    std::error_code ec;
    std::filesystem::create_directories(FLAGS_out, ec);
    if (ec) std::fprintf(stderr, "cannot create --out=%s: %s\n", FLAGS_out.c_str(), ec.message().c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const bool h5_ok = Hdf5RoundTrip(path, rank, size);
  failures += !h5_ok;

  auto nccl = dancegrpo::hpc::BootstrapNccl(MPI_COMM_WORLD, dancegrpo::hpc::LauncherLocalRank());
  std::string nccl_line = nccl.ok() ? "ok" : std::string(nccl.status().message());
  if (nccl.ok()) dancegrpo::hpc::DestroyNccl(*nccl);
  if (!nccl.ok() && dancegrpo::hpc::NcclCompiledIn()) failures += 1;

  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("MPI allreduce of rank ids over %d ranks: %s (%lld)\n", size, mpi_ok ? "ok" : "FAILED", sum);
    std::printf("parallel HDF5 write+read (%s): %s\n", path.c_str(), h5_ok ? "ok" : "FAILED");
    std::printf("NCCL: %s\n", nccl_line.c_str());
    std::printf("doctor: %s\n", total == 0 ? "all checks passed" : "SOME CHECKS FAILED");
  }
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
