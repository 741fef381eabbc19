// DiT throughput on the CPU: forward and forward+backward for the tiny and small presets,
// as tokens/s and achieved GFLOP/s, next to this machine's fp32 GEMM peak measured in the
// same run. Prints numbers; never fails on time.
//   bazel run -c opt //bench:dit_bench -- --batch=4 --clip=4x16x16
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "gflags/gflags.h"
#include "models/dit/dit.h"

DEFINE_int32(batch, 4, "clips per batch");
DEFINE_string(clip, "4x16x16", "latent clip size FxHxW");
DEFINE_int32(text_tokens, 16, "text tokens");
DEFINE_double(seconds, 2.0, "minimum measuring time per row");
DEFINE_int32(gemm, 1024, "GEMM size for the peak measurement");

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

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  int64_t f = 0, h = 0, w = 0;
  if (std::sscanf(FLAGS_clip.c_str(), "%ldx%ldx%ld", &f, &h, &w) != 3) {
    std::fprintf(stderr, "--clip must be FxHxW\n");
    return 2;
  }
  torch::manual_seed(0);
  const int64_t n = FLAGS_gemm;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  const double gemm_s = TimePerCall([&] { torch::NoGradGuard ng; auto c = torch::matmul(a, b); });
  const double peak = 2.0 * n * n * n / gemm_s / 1e9;
  std::printf("machine: %d intra-op threads; fp32 GEMM %ldx%ld peak %.1f GFLOP/s\n", at::get_num_threads(), n, n, peak);
  std::printf("%-6s %-9s %8s %12s %10s %8s\n", "preset", "pass", "tokens", "tokens/s", "GFLOP/s", "%peak");
  for (const std::string name : {"tiny", "small"}) {
    auto config = *dancegrpo::models::DitPreset(name);
    dancegrpo::models::VideoDit model(config);
    {
      torch::NoGradGuard ng;
      model.head->head->weight.normal_(0, 0.02);
    }
    dancegrpo::models::Conditioning text;
    text.tokens = torch::randn({FLAGS_batch, FLAGS_text_tokens, config.text_dim});
    text.token_mask = torch::ones({FLAGS_batch, FLAGS_text_tokens}, torch::kBool);
    text.pooled = torch::randn({FLAGS_batch, config.pooled_dim});
    auto x = torch::randn({FLAGS_batch, config.in_channels, f, h, w});
    auto sigma = torch::full({FLAGS_batch}, 0.5f);
    const auto grid = model.TokenGrid(f, h, w);
    const int64_t tokens = grid[0] * grid[1] * grid[2];
    const double flops = dancegrpo::models::DitForwardFlops(config, FLAGS_batch, tokens, FLAGS_text_tokens);
    const double fwd = TimePerCall([&] {
      torch::NoGradGuard ng;
      model.Velocity(x, sigma, text);
    });
    const double fb = TimePerCall([&] {
      model.zero_grad();
      model.Velocity(x, sigma, text).pow(2).mean().backward();
    });
    for (auto [pass, secs, fl] : {std::tuple<const char*, double, double>{"forward", fwd, flops},
                                  {"fwd+bwd", fb, 3 * flops}}) {
      const double gf = fl / secs / 1e9;
      std::printf("%-6s %-9s %8ld %12.0f %10.2f %7.1f%%\n", name.c_str(), pass, FLAGS_batch * tokens,
                  FLAGS_batch * tokens / secs, gf, 100 * gf / peak);
    }
  }
  return 0;
}
