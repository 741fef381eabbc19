#include "hpc/blas_kernels.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace dancegrpo::hpc {
namespace {

// OpenBLAS's entry points, looked up at run time: another BLAS simply lacks them.
struct OpenBlasApi {
  char* (*corename)() = nullptr;
  void (*dynamic_init)() = nullptr;
  void (*dynamic_quit)() = nullptr;
  bool present() const { return corename != nullptr; }
  bool can_switch() const { return dynamic_init != nullptr && dynamic_quit != nullptr; }
};

const OpenBlasApi& Api() {
  static const OpenBlasApi api = [] {
    OpenBlasApi a;
    a.corename = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    a.dynamic_init = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
    a.dynamic_quit = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
    return a;
  }();
  return api;
}

bool SameCore(const std::string& a, const std::string& b) { return absl::AsciiStrToLower(a) == absl::AsciiStrToLower(b); }

// Re-runs OpenBLAS's start-up kernel selection with OPENBLAS_CORETYPE=core, then leaves the
// environment as it was.
absl::Status SwitchKernels(const std::string& core) {
  if (!Api().present()) return absl::UnimplementedError("the BLAS is not OpenBLAS");
  const auto& api = Api();
  if (!api.can_switch())
    return absl::UnimplementedError("this OpenBLAS cannot change its kernels at run time (not a DYNAMIC_ARCH build)");
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = before ? before : "";
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  api.dynamic_quit();
  api.dynamic_init();
  if (before) setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  else unsetenv("OPENBLAS_CORETYPE");
  const std::string now = CurrentBlasKernels();
  if (!SameCore(now, core))
    return absl::NotFoundError(absl::StrCat("this OpenBLAS does not know the kernel set '", core, "' (it took ", now, ")"));
  return absl::OkStatus();
}

struct GemmCase {
  int64_t m, k, n;
  bool transposed_a;  // A as the transpose of a [k, m] matrix (BLAS's other memory order)
};

// Checks gemm(A, B) for one case and dtype against a float64 product computed by loops.
absl::Status CheckCase(const Gemm& gemm, const GemmCase& c, torch::ScalarType dtype, double tolerance, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto a = c.transposed_a ? torch::randn({c.k, c.m}, gen).t() : torch::randn({c.m, c.k}, gen);
  auto b = torch::randn({c.k, c.n}, gen);
  a = a.to(dtype);
  b = b.to(dtype);
  torch::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = gemm(a, b);
  }
  const std::string what = absl::StrFormat("%s GEMM %dx%dx%d%s", dtype == torch::kBFloat16 ? "bf16" : "fp32", c.m, c.k,
                                           c.n, c.transposed_a ? " (A transposed)" : "");
  if (!out.defined() || out.dim() != 2 || out.size(0) != c.m || out.size(1) != c.n)
    return absl::InternalError(absl::StrCat(what, " returned a result of the wrong shape"));
  const auto ad = a.to(torch::kFloat64).contiguous(), bd = b.to(torch::kFloat64).contiguous();
  const auto od = out.to(torch::kFloat64).contiguous();
  const auto A = ad.accessor<double, 2>(), B = bd.accessor<double, 2>(), O = od.accessor<double, 2>();
  std::vector<double> ref(c.n), bound(c.n);
  for (int64_t i = 0; i < c.m; ++i) {
    std::fill(ref.begin(), ref.end(), 0.0);
    std::fill(bound.begin(), bound.end(), 0.0);
    for (int64_t p = 0; p < c.k; ++p) {
      const double x = A[i][p];
      for (int64_t j = 0; j < c.n; ++j) {
        ref[j] += x * B[p][j];
        bound[j] += std::abs(x * B[p][j]);
      }
    }
    for (int64_t j = 0; j < c.n; ++j) {
      const double error = std::abs(O[i][j] - ref[j]);
      if (!(error <= tolerance * bound[j] + 1e-30))  // NaN fails too
        return absl::InternalError(absl::StrFormat("%s: element [%d, %d] is %.6g, the float64 product %.6g", what, i,
                                                   j, O[i][j], ref[j]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string CurrentBlasKernels() {
  const auto& api = Api();
  if (!api.present()) return "";
  const char* name = api.corename();
  return name ? name : "";
}

absl::Status UseBlasKernels(const std::string& core) { return SwitchKernels(core); }

int KernelTier(const std::string& openblas_core) {
  const std::string c = absl::AsciiStrToLower(openblas_core);
  for (const char* k : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == k) return 3;
  for (const char* k : {"haswell", "zen"})
    if (c == k) return 2;
  for (const char* k : {"sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"})
    if (c == k) return 1;
  return 0;
}

std::string BestKernelsForThisCpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // (libgcc's checks include the OS's support for the AVX and AVX-512 register state.)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
  return "";
}

absl::Status CheckGemm(const Gemm& gemm_or_null) {
  const Gemm gemm = gemm_or_null ? gemm_or_null : Gemm([](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::mm(a, b);
  });
  // Odd sizes (the kernels' edge paths), both memory orders of A, and one big enough for
  // OpenBLAS to split it over its threads.
  const std::vector<GemmCase> cases = {{67, 129, 33, false}, {5, 301, 7, true}, {130, 17, 257, false},
                                       {257, 255, 263, true}};
  uint64_t seed = 20261203;
  for (const auto& c : cases) {
    if (auto s = CheckCase(gemm, c, torch::kFloat32, 1e-4, ++seed); !s.ok()) return s;
    if (auto s = CheckCase(gemm, c, torch::kBFloat16, 2e-2, ++seed); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string BlasChoice::Describe() const {
  if (kernels.empty()) return absl::StrCat("a BLAS that is not OpenBLAS (", reason, ")");
  return absl::StrCat("OpenBLAS ", kernels, " kernels (", reason, ")");
}

absl::StatusOr<BlasChoice> ChooseBlasKernels(const BlasOptions& options) {
  BlasChoice choice;
  const auto& api = Api();
  if (!api.present()) {
    if (auto s = CheckGemm(options.gemm); !s.ok())
      return absl::InternalError(absl::StrCat("the GEMM self-check failed with this process's BLAS (not OpenBLAS): ",
                                              s.message(), "; install libopenblas0-openmp (scripts/setup.sh does)"));
    choice.reason = "GEMM self-check passed";
    return choice;
  }
  choice.picked = CurrentBlasKernels();
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced != nullptr && *forced != '\0') {  // the user's choice: kept, and checked
    choice.kernels = choice.picked;
    if (auto s = CheckGemm(options.gemm); !s.ok())
      return absl::InternalError(absl::StrCat("GEMM is wrong with the kernels OPENBLAS_CORETYPE=", forced, " selects (",
                                              choice.picked, "): ", s.message(),
                                              "; unset OPENBLAS_CORETYPE to let train choose and check them"));
    choice.reason = absl::StrCat("OPENBLAS_CORETYPE=", forced, "; GEMM self-check passed");
    if (!SameCore(forced, choice.picked)) {  // a name OpenBLAS does not know, or a set this CPU cannot run
      choice.reason = absl::StrCat("OPENBLAS_CORETYPE=", forced, " not taken: OpenBLAS's own choice; GEMM self-check passed");
      choice.notice = absl::StrCat("OPENBLAS_CORETYPE=", forced, " is not a kernel set this OpenBLAS took on this CPU; it ",
                                   "computes with ", choice.picked, ". Set a name it knows that this CPU runs (",
                                   BestKernelsForThisCpu().empty() ? "Prescott" : BestKernelsForThisCpu(),
                                   " here), or unset OPENBLAS_CORETYPE to let train choose");
    }
    return choice;
  }
  // Candidates, best first: what the CPU allows (if OpenBLAS picked less), OpenBLAS's own
  // choice, the generic kernels.
  std::vector<std::string> candidates;
  const std::string best = BestKernelsForThisCpu();
  if (options.auto_select && !best.empty() && KernelTier(best) > KernelTier(choice.picked)) candidates.push_back(best);
  candidates.push_back(choice.picked);
  if (!SameCore(choice.picked, "Prescott")) candidates.push_back("Prescott");
  std::vector<std::string> refused;
  for (const auto& core : candidates) {
    if (!SameCore(CurrentBlasKernels(), core)) {
      if (auto s = SwitchKernels(core); !s.ok()) {
        refused.push_back(absl::StrCat(core, ": ", s.message()));
        continue;
      }
    }
    if (auto s = CheckGemm(options.gemm); !s.ok()) {
      refused.push_back(absl::StrCat(core, " (GEMM self-check: ", s.message(), ")"));
      continue;
    }
    choice.kernels = CurrentBlasKernels();
    if (SameCore(core, choice.picked))
      choice.reason = absl::StrCat("OpenBLAS's own choice; GEMM self-check passed");
    else if (SameCore(core, best))
      choice.reason = absl::StrCat("the best this CPU runs; OpenBLAS picked ", choice.picked, "; GEMM self-check passed");
    else
      choice.reason = absl::StrCat("the generic kernels; GEMM self-check passed");
    if (!refused.empty())
      choice.notice = absl::StrCat("refused OpenBLAS kernels ", absl::StrJoin(refused, "; "), "; computing with ",
                                   choice.kernels, " (correct, slower)");
    return choice;
  }
  return absl::InternalError(absl::StrCat("no OpenBLAS kernel set computes GEMM correctly in this process: ",
                                          absl::StrJoin(refused, "; "),
                                          "; check the BLAS installation (scripts/setup.sh) or set OPENBLAS_CORETYPE"));
}

}  // namespace dancegrpo::hpc
