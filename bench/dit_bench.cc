// DiT throughput: forward and forward+backward for the chosen presets in fp32 and bf16, as
// tokens/s and achieved GFLOP/s, next to this machine's GEMM peak in the same dtype measured
// in the same run, and, with --peak_tflops, model FLOPs utilisation (MFU) against a device's
// published dense peak. Prints numbers; never fails on time.
//   bazel run -c opt //bench:dit_bench -- --batch=4 --clip=4x16x16
//   dit_bench --device=cuda --precision=bf16 --preset=wan2.1-1.3b --latent=16,21,60,104 --batch=1 --peak_tflops=989
//   dit_bench --preset=small --dump=DIR   # the model's config, weights, one input and its output,
//                                         # for the PyTorch twin (bench/twin/dit_twin.py)
// Threads: --threads (default: libtorch's default), set before anything runs, so the GEMM peak
// and the model are measured on the same number of threads.
#include <torch/torch.h>

#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include <fstream>

#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "hpc/atomic_file.h"
#include "hpc/blas_kernels.h"
#include "models/dit/cpu_ops.h"
#include "models/dit/dit.h"
#include "models/safetensors.h"

DEFINE_int32(batch, 4, "clips per batch");
DEFINE_string(clip, "4x16x16", "latent clip size FxHxW");
DEFINE_int32(text_tokens, 16, "text tokens");
DEFINE_double(seconds, 2.0, "minimum measuring time per row");
DEFINE_int32(gemm, 1024, "GEMM size for the peak measurement");
DEFINE_string(preset, "tiny,small", "DiT presets, comma-separated");
DEFINE_string(latent, "", "C,F,H,W latent (overrides --clip and the preset's channels)");
DEFINE_string(precision, "fp32,bf16", "fp32, bf16, or both");
DEFINE_string(device, "cpu", "cpu | cuda");
DEFINE_double(peak_tflops, 0, "a published dense peak (H100/H200 SXM bf16: 989) for an MFU column; 0 = none");
DEFINE_bool(fused_kernels, true,
            "fp32 CPU attention, GELU, RMSNorm, RoPE and adaLN through the fused kernels (models/dit/cpu_ops.h); "
            "false: libtorch's ops (the before row)");
DEFINE_bool(activation_checkpointing, false, "recompute blocks in backward (as training at scale does)");
DEFINE_int32(threads, 0, "intra-op threads for the GEMM peak and the model; 0 = libtorch's default");
DEFINE_string(dump, "", "write DIR/{config.json, weights.safetensors, io.safetensors} for the first preset in fp32, then exit");

namespace {

template <typename F>
double TimePerCall(F&& f) {
  f();  // warm-up
  int reps = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    f();
    ++reps;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < FLAGS_seconds);
  return elapsed / reps;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

void Sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The model and one forward, as files the PyTorch twin reads.
int Dump(const std::string& dir, const dancegrpo::models::DitConfig& c, dancegrpo::models::VideoDit& model,
         const torch::Tensor& x, const torch::Tensor& sigma, const dancegrpo::models::Conditioning& text) {
  if (auto s = dancegrpo::hpc::MakeDirectories(dir); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  const std::string json = absl::StrFormat(
      "{\"name\": \"%s\", \"in_channels\": %d, \"out_channels\": %d, \"patch\": [%d, %d, %d], \"dim\": %d, "
      "\"ffn_dim\": %d, \"heads\": %d, \"layers\": %d, \"text_dim\": %d, \"pooled_dim\": %d, \"freq_dim\": %d, "
      "\"stem_channels\": %d, \"eps\": %.17g, \"text_len\": %d, \"pad_text_to_len\": %s}\n",
      c.name, c.in_channels, c.out_channels, c.patch[0], c.patch[1], c.patch[2], c.dim, c.ffn_dim, c.heads, c.layers,
      c.text_dim, c.pooled_dim, c.freq_dim, c.stem_channels, c.eps, c.text_len, c.pad_text_to_len ? "true" : "false");
  std::vector<std::pair<std::string, torch::Tensor>> weights;
  for (const auto& p : model.named_parameters()) weights.emplace_back(p.key(), p.value().detach().cpu());
  torch::Tensor v;
  {
    torch::NoGradGuard ng;
    v = model.Velocity(x, sigma, text).cpu();
  }
  std::vector<std::pair<std::string, torch::Tensor>> io = {
      {"x", x.cpu()}, {"sigma", sigma.cpu()}, {"tokens", text.tokens.cpu()},
      {"token_mask", text.token_mask.cpu().to(torch::kFloat32)}, {"velocity", v}};
  if (text.pooled.defined()) io.emplace_back("pooled", text.pooled.cpu());
  absl::Status s = dancegrpo::hpc::WriteFileAtomically(dir + "/config.json", json);
  if (s.ok()) s = dancegrpo::models::WriteSafetensors(dir + "/weights.safetensors", weights);
  if (s.ok()) s = dancegrpo::models::WriteSafetensors(dir + "/io.safetensors", io);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  std::printf("wrote %s/{config.json, weights.safetensors, io.safetensors}\n", dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  int64_t c = -1, f = 0, h = 0, w = 0;
  if (!FLAGS_latent.empty()) {
    if (std::sscanf(FLAGS_latent.c_str(), "%ld,%ld,%ld,%ld", &c, &f, &h, &w) != 4) {
      std::fprintf(stderr, "--latent must be C,F,H,W\n");
      return 2;
    }
  } else if (std::sscanf(FLAGS_clip.c_str(), "%ldx%ldx%ld", &f, &h, &w) != 3) {
    std::fprintf(stderr, "--clip must be FxHxW\n");
    return 2;
  }
  if (FLAGS_device == "cuda" && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--device=cuda, but no GPU is visible\n");
    return 2;
  }
  const torch::Device device = FLAGS_device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  // Set (not just read) before the GEMM peak, so the peak and the model run on the same threads.
  at::set_num_threads(FLAGS_threads > 0 ? FLAGS_threads : at::get_num_threads());
  dancegrpo::models::SetFusedCpuKernels(FLAGS_fused_kernels);
  torch::manual_seed(0);
  // The BLAS kernels train would use (the best this CPU runs, checked): the same numbers as train.
  const auto blas = dancegrpo::hpc::ChooseBlasKernels();
  if (!blas.ok()) {
    std::fprintf(stderr, "BLAS: %s\n", std::string(blas.status().message()).c_str());
    return 2;
  }
  if (!blas->notice.empty()) std::fprintf(stderr, "BLAS: %s\n", blas->notice.c_str());
  std::printf("machine: %s, %d intra-op threads, BLAS: %s\n", device.str().c_str(), at::get_num_threads(),
              blas->Describe().c_str());
  for (const auto& precision : Split(FLAGS_precision)) {
    const auto dtype = precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
    const int64_t n = FLAGS_gemm;
    auto a = torch::randn({n, n}).to(device, dtype), b = torch::randn({n, n}).to(device, dtype);
    const double gemm_s = TimePerCall([&] {
      torch::NoGradGuard ng;
      auto r = torch::matmul(a, b);
      Sync(device);
    });
    const double peak = 2.0 * n * n * n / gemm_s / 1e9;
    std::printf("%s GEMM %ldx%ld: %.1f GFLOP/s (the %%peak column's reference)\n", precision.c_str(), n, n, peak);
    std::printf("%-12s %-5s %-9s %8s %12s %10s %12s %8s%s\n", "preset", "dtype", "pass", "tokens", "tokens/s", "ms/call",
                "GFLOP/s", "%peak", FLAGS_peak_tflops > 0 ? "      MFU" : "");
    for (const auto& name : Split(FLAGS_preset)) {
      auto config_or = dancegrpo::models::DitPreset(name);
      if (!config_or.ok()) {
        std::fprintf(stderr, "%s\n", std::string(config_or.status().message()).c_str());
        return 2;
      }
      auto config = *config_or;
      config.activation_checkpointing = FLAGS_activation_checkpointing;
      dancegrpo::models::VideoDit model(config);
      {
        torch::NoGradGuard ng;
        model.head->head->weight.normal_(0, 0.02);
      }
      model.to(device, dtype);
      const int64_t channels = c > 0 ? c : config.in_channels;
      const int64_t text_tokens = config.pad_text_to_len ? config.text_len : FLAGS_text_tokens;
      dancegrpo::models::Conditioning text;
      text.tokens = torch::randn({FLAGS_batch, FLAGS_text_tokens, config.text_dim}).to(device);
      text.token_mask = torch::ones({FLAGS_batch, FLAGS_text_tokens}, torch::kBool).to(device);
      if (config.pooled_dim > 0) text.pooled = torch::randn({FLAGS_batch, config.pooled_dim}).to(device);
      auto x = torch::randn({FLAGS_batch, channels, f, h, w}).to(device);
      auto sigma = torch::full({FLAGS_batch}, 0.5f).to(device);
      const auto grid = model.TokenGrid(f, h, w);
      const int64_t tokens = grid[0] * grid[1] * grid[2];
      const double flops = dancegrpo::models::DitForwardFlops(config, FLAGS_batch, tokens, text_tokens);
      if (!FLAGS_dump.empty()) return Dump(FLAGS_dump, config, model, x, sigma, text);
      const double fwd = TimePerCall([&] {
        torch::NoGradGuard ng;
        model.Velocity(x, sigma, text);
        Sync(device);
      });
      const double fb = TimePerCall([&] {
        model.zero_grad();
        model.Velocity(x, sigma, text).to(torch::kFloat32).pow(2).mean().backward();
        Sync(device);
      });
      for (auto [pass, secs, fl] : {std::tuple<const char*, double, double>{"forward", fwd, flops},
                                    {"fwd+bwd", fb, 3 * flops}}) {
        const double gf = fl / secs / 1e9;
        std::printf("%-12s %-5s %-9s %8ld %12.0f %10.3f %12.2f %7.1f%%", name.c_str(), precision.c_str(), pass,
                    FLAGS_batch * tokens, FLAGS_batch * tokens / secs, 1e3 * secs, gf, 100 * gf / peak);
        if (FLAGS_peak_tflops > 0) std::printf(" %7.2f%%", 100 * gf / (FLAGS_peak_tflops * 1e3));
        std::printf("\n");
      }
    }
  }
  return 0;
}
