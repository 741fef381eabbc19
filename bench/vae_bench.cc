// The native Wan2.1 VAE decoder: time and peak RSS of one decode, beside plan's decode term.
// Random weights in Wan2.1's layout (dim 96, z_dim 16 unless told), one process per row
// (peak RSS only grows), printed as one line; bench/vae_bench.sh runs the rows and the
// PyTorch eager twin of Wan's own vae.py (bench/twin/wan_vae_twin.py) on the same latents' shape.
//   bazel run -c opt //bench:vae_bench -- --latents=5,16,16 --dtype=fp32 [--tile=64 --stride=48]
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gflags/gflags.h"
#include "hpc/blas_kernels.h"
#include "hpc/memory.h"
#include "models/vae/wan_vae.h"

DEFINE_string(latents, "5,16,16", "latent frames, height, width (F,H,W)");
DEFINE_int32(batch, 1, "clips decoded at once");
DEFINE_int32(dim, 96, "decoder base channels (Wan2.1: 96)");
DEFINE_string(dtype, "fp32", "fp32 or bf16");
DEFINE_int32(tile, 0, "tile size in pixels (0: untiled)");
DEFINE_int32(stride, 0, "tile stride in pixels (default 3/4 of the tile)");
DEFINE_int32(repeats, 1, "decodes timed (after one untimed warm-up if > 1)");
DEFINE_string(device, "cpu", "cpu or cuda (scripts/gpu_check.sh; peak RSS is then host memory only)");

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  using dancegrpo::models::vae::WanVaeConfig;
  std::vector<int64_t> fhw;
  for (auto p : absl::StrSplit(FLAGS_latents, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(p, &v) || v <= 0) return std::fprintf(stderr, "--latents=%s: give F,H,W\n", FLAGS_latents.c_str()), 2;
    fhw.push_back(v);
  }
  if (fhw.size() != 3) return std::fprintf(stderr, "--latents=%s: give F,H,W\n", FLAGS_latents.c_str()), 2;
  auto blas = dancegrpo::hpc::ChooseBlasKernels();
  torch::NoGradGuard no_grad;
  const int64_t base_rss = dancegrpo::hpc::PeakRss();
  WanVaeConfig c = WanVaeConfig::Wan21();
  c.dim = FLAGS_dim;
  dancegrpo::models::vae::WanVaeOptions o;
  try {
    o.device = torch::Device(FLAGS_device);
  } catch (const std::exception&) {
    return std::fprintf(stderr, "--device=%s: use cpu or cuda\n", FLAGS_device.c_str()), 2;
  }
  if (o.device.is_cuda() && !torch::cuda::is_available())
    return std::fprintf(stderr, "--device=%s: this libtorch sees no CUDA GPU\n", FLAGS_device.c_str()), 2;
  o.dtype = FLAGS_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  if (FLAGS_tile > 0) {
    o.tiling = true;
    o.tile = FLAGS_tile;
    o.tile_stride = FLAGS_stride > 0 ? FLAGS_stride : FLAGS_tile * 3 / 4;
  }
  torch::manual_seed(1);
  std::map<std::string, torch::Tensor> w;
  for (const auto& [name, shape] : dancegrpo::models::vae::WanVaeDecoderLayout(c)) {
    auto t = torch::randn(shape);
    if (shape.size() >= 2) t /= std::sqrt(static_cast<double>(t[0].numel()));
    if (name.find("gamma") != std::string::npos) t = 1 + 0.1 * t;
    w[name] = t;
  }
  auto d = dancegrpo::models::vae::WanVaeDecoder::FromTensors(c, std::move(w), o, "random Wan2.1-layout weights");
  if (!d.ok()) return std::fprintf(stderr, "vae_bench: %s\n", std::string(d.status().message()).c_str()), 1;
  auto z = torch::randn({FLAGS_batch, c.z_dim, fhw[0], fhw[1], fhw[2]});
  double seconds = 0;
  for (int r = 0; r < FLAGS_repeats + (FLAGS_repeats > 1 ? 1 : 0); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = (*d)->Decode(z);
    if (!out.ok()) return std::fprintf(stderr, "vae_bench: %s\n", std::string(out.status().message()).c_str()), 1;
    if (o.device.is_cuda()) torch::cuda::synchronize();
    if (r > 0 || FLAGS_repeats == 1)
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  seconds /= FLAGS_repeats;
  const auto plan = dancegrpo::models::vae::PlanWanVaeDecode(c, o, FLAGS_batch, fhw[0], fhw[1], fhw[2]);
  const double peak = static_cast<double>(dancegrpo::hpc::PeakRss() - base_rss);
  std::printf("vae_bench latents %ldx%ldx%ld batch %d %s %s %s: %.2f s/decode, decode RSS %.0f MB, plan %.0f MB "
              "(weights %.0f, cache %.0f, chunk %.0f, tiles %.0f, output %.0f), measured/plan %.2f, threads %d, BLAS %s\n",
              static_cast<long>(fhw[0]), static_cast<long>(fhw[1]), static_cast<long>(fhw[2]), FLAGS_batch,
              FLAGS_dtype.c_str(), o.device.str().c_str(), o.tiling ? absl::StrCat("tiles ", o.tile, "/", o.tile_stride).c_str() : "untiled",
              seconds, peak / 1e6, plan.peak() / 1e6, plan.weights / 1e6, plan.cache / 1e6, plan.chunk / 1e6,
              plan.tiles / 1e6, plan.output / 1e6, peak / static_cast<double>(plan.peak()), at::get_num_threads(),
              blas.ok() ? blas->Describe().c_str() : "?");
  return 0;
}
