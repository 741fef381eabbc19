// DiT throughput: forward and forward+backward for the chosen presets in fp32 and bf16, as
// tokens/s and achieved GFLOP/s, next to this machine's GEMM peak in the same dtype measured
// in the same run, and, with --peak_tflops, model FLOPs utilisation (MFU) against a device's
// published dense peak. Prints numbers; never fails on time.
//   bazel run -c opt //bench:dit_bench -- --batch=4 --clip=4x16x16
//   dit_bench --device=cuda --precision=bf16 --preset=wan2.1-1.3b --latent=16,21,60,104 --batch=1 --peak_tflops=989
#include <torch/torch.h>

#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "gflags/gflags.h"
#include "models/dit/dit.h"

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
DEFINE_bool(activation_checkpointing, false, "recompute blocks in backward (as training at scale does)");

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
  torch::manual_seed(0);
  std::printf("machine: %s, %d intra-op threads\n", device.str().c_str(), at::get_num_threads());
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
    std::printf("%-12s %-5s %-9s %8s %12s %12s %8s%s\n", "preset", "dtype", "pass", "tokens", "tokens/s", "GFLOP/s",
                "%peak", FLAGS_peak_tflops > 0 ? "      MFU" : "");
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
        std::printf("%-12s %-5s %-9s %8ld %12.0f %12.2f %7.1f%%", name.c_str(), precision.c_str(), pass,
                    FLAGS_batch * tokens, FLAGS_batch * tokens / secs, gf, 100 * gf / peak);
        if (FLAGS_peak_tflops > 0) std::printf(" %7.2f%%", 100 * gf / (FLAGS_peak_tflops * 1e3));
        std::printf("\n");
      }
    }
  }
  return 0;
}
