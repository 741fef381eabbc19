// dit_presets: prints every DiT preset with its parameter count (from the formula) and
// memory for weights; with --forward=NAME it instantiates that preset on the CPU and runs
// one forward pass on a small clip, printing the time and the peak resident memory.
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "gflags/gflags.h"
#include "models/dit/dit.h"

DEFINE_string(forward, "", "preset to instantiate and run forward on a tiny clip (e.g. wan2.1-1.3b)");
DEFINE_string(clip, "1x8x8", "latent clip size FxHxW for --forward");
DEFINE_int32(text_tokens, 16, "text tokens for --forward");

namespace {
double PeakRssGiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;  // ru_maxrss is in KiB on Linux
}
double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  using dancegrpo::models::DitPreset;
  std::printf("%-12s %6s %6s %6s %6s %16s %10s %10s  mirrors\n", "preset", "dim", "ffn", "heads", "layers",
              "parameters", "fp32 GiB", "bf16 GiB");
  for (const auto& name : dancegrpo::models::DitPresetNames()) {
    const auto c = *DitPreset(name);
    const double n = static_cast<double>(dancegrpo::models::DitParameterCount(c));
    const char* mirrors = name == "wan2.1-1.3b" ? "Wan2.1-T2V-1.3B" : name == "wan2.1-14b" ? "Wan2.1-T2V-14B" : "-";
    std::printf("%-12s %6ld %6ld %6ld %6ld %16.0f %10.2f %10.2f  %s\n", name.c_str(), c.dim, c.ffn_dim, c.heads,
                c.layers, n, n * 4 / (1 << 30), n * 2 / (1 << 30), mirrors);
  }
  if (FLAGS_forward.empty()) return 0;
  auto config = DitPreset(FLAGS_forward);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  int64_t f = 0, h = 0, w = 0;
  if (std::sscanf(FLAGS_clip.c_str(), "%ldx%ldx%ld", &f, &h, &w) != 3 || f < 1 || h < 1 || w < 1) {
    std::fprintf(stderr, "--clip must be FxHxW with positive sizes, got '%s'\n", FLAGS_clip.c_str());
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    auto t0 = std::chrono::steady_clock::now();
    dancegrpo::models::VideoDit model(*config);
    const double init_s = Since(t0);
    dancegrpo::models::Conditioning text;
    text.tokens = torch::randn({1, FLAGS_text_tokens, config->text_dim});
    text.token_mask = torch::ones({1, FLAGS_text_tokens}, torch::kBool);
    if (config->pooled_dim > 0) text.pooled = torch::randn({1, config->pooled_dim});
    auto x = torch::randn({1, config->in_channels, f, h, w});
    t0 = std::chrono::steady_clock::now();
    auto v = model.Velocity(x, torch::tensor({0.5f}), text);
    const double fwd_s = Since(t0);
    const auto grid = model.TokenGrid(f, h, w);
    std::printf("\n%s: instantiated in %.1f s; forward on [1, %ld, %ld, %ld, %ld] (%ld tokens) in %.2f s; "
                "output %s finite=%d; peak RSS %.2f GiB\n",
                FLAGS_forward.c_str(), init_s, config->in_channels, f, h, w, grid[0] * grid[1] * grid[2], fwd_s,
                c10::str(v.sizes()).c_str(), torch::isfinite(v).all().item<bool>() ? 1 : 0, PeakRssGiB());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "libtorch error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
