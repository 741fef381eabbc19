// The BLAS kernels a process computes with: fast by default, never wrong.
//
// Debian's OpenBLAS (a DYNAMIC_ARCH build) picks its kernel set from the CPU at load time and
// falls back to the generic SSE3 "Prescott" kernels on CPUs it does not know, such as newer
// Xeons: there fp32 GEMM runs 4-6x slower than with the AVX-512 kernels the CPU can run
// (docs/experiments/2026-11-30-openblas-core.md). ChooseBlasKernels, called once at start-up
// before any BLAS work, selects the best kernel set the CPU's features allow (SkylakeX for
// AVX-512, Haswell for AVX2, Sandybridge for AVX) when OpenBLAS picked a lesser one, and keeps
// it only after a numerical self-check of GEMM (fp32 and bf16, odd sizes, a transposed operand,
// against a float64 reference computed without BLAS). A set that fails the check is refused
// and the process falls back to OpenBLAS's own choice, then to the generic kernels, with a
// one-line notice; if no set passes, it is an error. OPENBLAS_CORETYPE set by the user is kept
// (and checked). The switch is OpenBLAS's own: gotoblas_dynamic_quit / gotoblas_dynamic_init
// re-run its start-up selection with OPENBLAS_CORETYPE set, in this process.
#ifndef DANCEGRPO_HPC_BLAS_KERNELS_H_
#define DANCEGRPO_HPC_BLAS_KERNELS_H_

#include <torch/torch.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo::hpc {

using Gemm = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

// Multiplies odd-sized matrices with `gemm` (torch::mm by default) in fp32 and in bf16 and
// compares every element with a float64 reference, within a bound that scales with
// sum_k |a_ik b_kj| (fp32: 1e-4 of it, bf16: 2e-2). Fails naming the case and the error.
absl::Status CheckGemm(const Gemm& gemm = nullptr);

struct BlasChoice {
  std::string picked;   // the kernels OpenBLAS picked by itself at load, e.g. "Prescott"
  std::string kernels;  // the kernels in use now, e.g. "SkylakeX"; "" when the BLAS is not OpenBLAS
  std::string reason;   // why these, e.g. "AVX-512 CPU, self-check passed"
  std::string notice;   // non-empty when a kernel set was refused: the one-line notice
  // One line for a start line: "OpenBLAS SkylakeX kernels (OpenBLAS picked Prescott; AVX-512 CPU, self-check passed)".
  std::string Describe() const;
};

struct BlasOptions {
  bool auto_select = true;  // false: keep OpenBLAS's own choice (still self-checked)
  Gemm gemm;                // the GEMM the self-check runs (tests inject a wrong one); null: torch::mm
};

// Chooses and self-checks the kernels (see above). Call before any BLAS work, from one thread.
absl::StatusOr<BlasChoice> ChooseBlasKernels(const BlasOptions& options = {});

// The best OpenBLAS kernel set this CPU's features allow ("SkylakeX", "Haswell", "Sandybridge",
// or "" when only the generic ones), and the rank of a kernel set's name (3 AVX-512, 2 AVX2,
// 1 AVX, 0 generic or unknown).
std::string BestKernelsForThisCpu();
int KernelTier(const std::string& openblas_core);

// The kernels OpenBLAS uses now ("" when the BLAS is not OpenBLAS).
std::string CurrentBlasKernels();

// Switches OpenBLAS to the kernel set `core` (an OPENBLAS_CORETYPE name), unchecked: for
// benchmarks and tests. Fails if the BLAS is not a DYNAMIC_ARCH OpenBLAS or does not know it.
// Call only with a set the CPU can run (see BestKernelsForThisCpu).
absl::Status UseBlasKernels(const std::string& core);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_BLAS_KERNELS_H_
