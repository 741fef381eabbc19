// The BLAS kernel choice: the GEMM self-check catches wrong products (a dropped tail, an
// offset, NaN) in fp32 and bf16; a kernel set whose GEMM is wrong is refused with a notice and
// the process computes with a correct one; no correct set, or a wrong user-forced set, is an
// error that names the fix; a forced name OpenBLAS did not take gets a notice; by default the
// kernels are the best this CPU runs.
#include "hpc/blas_kernels.h"

#include <torch/torch.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "gtest/gtest.h"

namespace dancegrpo::hpc {
namespace {

bool IsOpenBlas() { return !CurrentBlasKernels().empty(); }

// Restores OpenBLAS's own choice after a test that changed the kernels.
class BlasKernels : public ::testing::Test {
 protected:
  void SetUp() override { original_ = CurrentBlasKernels(); }
  void TearDown() override {
    if (!original_.empty() && CurrentBlasKernels() != original_) EXPECT_TRUE(UseBlasKernels(original_).ok());
  }
  std::string original_;
};

TEST_F(BlasKernels, TheSelfCheckPassesTorchsGemm) {
  const auto s = CheckGemm();
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(BlasKernels, TheSelfCheckCatchesWrongProducts) {
  // The last term of the inner sum dropped (an edge-case bug of a kernel on odd sizes).
  auto dropped = CheckGemm([](const torch::Tensor& a, const torch::Tensor& b) {
    const int64_t k = a.size(1);
    return torch::mm(a.narrow(1, 0, k - 1), b.narrow(0, 0, k - 1));
  });
  ASSERT_FALSE(dropped.ok());
  EXPECT_NE(dropped.message().find("fp32 GEMM 67x129x33: element ["), std::string::npos) << dropped;
  // Right in fp32, off by one bf16 step of the largest element in bf16.
  auto bf16 = CheckGemm([](const torch::Tensor& a, const torch::Tensor& b) {
    auto c = torch::mm(a, b);
    if (a.scalar_type() == torch::kBFloat16) c.select(0, 3).select(0, 2).add_(c.abs().max().item<double>() * 0.25);
    return c;
  });
  ASSERT_FALSE(bf16.ok());
  EXPECT_NE(bf16.message().find("bf16 GEMM 67x129x33: element [3, 2]"), std::string::npos) << bf16;
  // NaN, and a wrong shape.
  auto nan = CheckGemm([](const torch::Tensor& a, const torch::Tensor& b) { return torch::mm(a, b) * NAN; });
  EXPECT_FALSE(nan.ok());
  auto shape = CheckGemm([](const torch::Tensor& a, const torch::Tensor& b) { return torch::mm(a, b).t(); });
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.message().find("wrong shape"), std::string::npos) << shape;
}

TEST_F(BlasKernels, ByDefaultTheKernelsAreTheBestThisCpuRuns) {
  if (!IsOpenBlas()) GTEST_SKIP() << "not OpenBLAS";
  auto choice = ChooseBlasKernels();
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->kernels, CurrentBlasKernels());
  EXPECT_TRUE(choice->notice.empty()) << choice->notice;
  EXPECT_GE(KernelTier(choice->kernels), KernelTier(BestKernelsForThisCpu())) << choice->Describe();
  EXPECT_GE(KernelTier(choice->kernels), KernelTier(choice->picked)) << choice->Describe();
  EXPECT_NE(choice->Describe().find("GEMM self-check passed"), std::string::npos) << choice->Describe();
}

// What a newer Xeon gets from Debian's OpenBLAS: the generic kernels. The choice moves to the
// best set the CPU runs, checked.
TEST_F(BlasKernels, WhereOpenBlasFellBackToTheGenericKernelsTheBestAreChosen) {
  if (!IsOpenBlas() || BestKernelsForThisCpu().empty()) GTEST_SKIP() << "not OpenBLAS, or a CPU without AVX";
  ASSERT_TRUE(UseBlasKernels("Prescott").ok());
  auto choice = ChooseBlasKernels();
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->picked, "Prescott");
  EXPECT_EQ(choice->kernels, BestKernelsForThisCpu());
  EXPECT_EQ(CurrentBlasKernels(), BestKernelsForThisCpu());
  EXPECT_NE(choice->Describe().find("the best this CPU runs; OpenBLAS picked Prescott; GEMM self-check passed"),
            std::string::npos)
      << choice->Describe();
  // --blas_kernels=openblas keeps the generic ones.
  ASSERT_TRUE(UseBlasKernels("Prescott").ok());
  BlasOptions keep;
  keep.auto_select = false;
  auto kept = ChooseBlasKernels(keep);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kernels, "Prescott");
}

// The refusal path: every kernel set but the generic one multiplies wrongly. The choice
// refuses them, says so in one line, and computes with the generic kernels.
TEST_F(BlasKernels, KernelsThatFailTheSelfCheckAreRefused) {
  if (!IsOpenBlas()) GTEST_SKIP() << "not OpenBLAS";
  BlasOptions o;
  o.gemm = [](const torch::Tensor& a, const torch::Tensor& b) {
    auto c = torch::mm(a, b);
    return CurrentBlasKernels() == "Prescott" ? c : c + 0.5;
  };
  const std::string picked = CurrentBlasKernels();
  auto choice = ChooseBlasKernels(o);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->kernels, "Prescott");
  EXPECT_EQ(CurrentBlasKernels(), "Prescott");
  if (picked != "Prescott" || KernelTier(BestKernelsForThisCpu()) > 0) {
    EXPECT_NE(choice->notice.find("refused OpenBLAS kernels "), std::string::npos) << choice->notice;
    EXPECT_NE(choice->notice.find("GEMM self-check: fp32 GEMM 67x129x33"), std::string::npos) << choice->notice;
    EXPECT_NE(choice->notice.find("computing with Prescott (correct, slower)"), std::string::npos) << choice->notice;
  }
  // The generic kernels compute right.
  EXPECT_TRUE(CheckGemm().ok());
}

TEST_F(BlasKernels, NoCorrectKernelsIsAnError) {
  if (!IsOpenBlas()) GTEST_SKIP() << "not OpenBLAS";
  BlasOptions o;
  o.gemm = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::mm(a, b) * 2; };
  auto choice = ChooseBlasKernels(o);
  ASSERT_FALSE(choice.ok());
  EXPECT_NE(choice.status().message().find("no OpenBLAS kernel set computes GEMM correctly"), std::string::npos)
      << choice.status();
  EXPECT_NE(choice.status().message().find("Prescott (GEMM self-check"), std::string::npos) << choice.status();
}

TEST_F(BlasKernels, AUserForcedKernelSetIsKeptAndChecked) {
  if (!IsOpenBlas()) GTEST_SKIP() << "not OpenBLAS";
  setenv("OPENBLAS_CORETYPE", original_.c_str(), 1);
  auto kept = ChooseBlasKernels();
  BlasOptions wrong;
  wrong.gemm = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::mm(a, b) + 1; };
  auto refused = ChooseBlasKernels(wrong);
  unsetenv("OPENBLAS_CORETYPE");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kernels, original_);
  EXPECT_NE(kept->reason.find("OPENBLAS_CORETYPE=" + original_), std::string::npos) << kept->reason;
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("unset OPENBLAS_CORETYPE"), std::string::npos) << refused.status();
}

// A name OpenBLAS ignores (a typo, a set it does not know) leaves its own choice in place: the
// run goes on with those kernels, checked, and says the variable was not taken.
TEST_F(BlasKernels, AForcedNameOpenBlasDidNotTakeIsNamedInANotice) {
  if (!IsOpenBlas()) GTEST_SKIP() << "not OpenBLAS";
  setenv("OPENBLAS_CORETYPE", "Skylakex2", 1);
  auto choice = ChooseBlasKernels();
  unsetenv("OPENBLAS_CORETYPE");
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->kernels, original_);
  EXPECT_NE(choice->notice.find("OPENBLAS_CORETYPE=Skylakex2 is not a kernel set this OpenBLAS took"), std::string::npos)
      << choice->notice;
  EXPECT_NE(choice->notice.find("computes with " + original_), std::string::npos) << choice->notice;
  EXPECT_NE(choice->Describe().find("not taken"), std::string::npos) << choice->Describe();
  // The same name in another case is the set itself: no notice.
  setenv("OPENBLAS_CORETYPE", absl::AsciiStrToUpper(original_).c_str(), 1);
  auto same = ChooseBlasKernels();
  unsetenv("OPENBLAS_CORETYPE");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->notice.empty()) << same->notice;
}

TEST(BlasKernelTiers, RankTheKernelSets) {
  EXPECT_EQ(KernelTier("SkylakeX"), 3);
  EXPECT_EQ(KernelTier("Cooperlake"), 3);
  EXPECT_EQ(KernelTier("Haswell"), 2);
  EXPECT_EQ(KernelTier("Zen"), 2);
  EXPECT_EQ(KernelTier("Sandybridge"), 1);
  EXPECT_EQ(KernelTier("Prescott"), 0);
  EXPECT_EQ(KernelTier("Unknown"), 0);
}

}  // namespace
}  // namespace dancegrpo::hpc
