// Sequence-parallel attention layouts on one long sequence: Ulysses, ring and USP (Ulysses x
// ring) for DiT blocks of Wan2.1-1.3B's width (dim 1536, 12 heads, ffn 8960, text 512 x 4096).
// Every rank builds the same blocks, splits the sequence over the world with
// SetSequenceParallel(world, --ulysses), and times forward (no gradients, as in the rollout)
// and forward + backward (as in the update). Rank 0 prints one row: tokens/s of both, the
// worst rank's peak RSS above its RSS at the start of each, and the planner's count of the same
// (models::DitFamily's activation terms; for forward + backward also the parameters' gradients). bench/usp_bench.sh runs the layouts of 4 ranks.
// A benchmark: it prints numbers and never passes or fails on time.
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "gflags/gflags.h"
#include "hpc/comm/mpi_communicator.h"
#include "hpc/memory.h"
#include "models/dit/dit.h"
#include "models/dit/dit_family.h"

DEFINE_int32(ulysses, 0, "Ulysses degree (divides the ranks and 12); ring degree = ranks / ulysses; 0 = gcd");
DEFINE_int32(layers, 1, "DiT blocks");
DEFINE_string(latent, "4,32,32", "latent frames,height,width (tokens = F x H/2 x W/2)");
DEFINE_int32(batch, 1, "samples per evaluation");
DEFINE_int32(repeats, 2, "timed repeats of each (after one warm-up)");
DEFINE_string(precision, "fp32", "fp32 | bf16");

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t Max(dancegrpo::hpc::Communicator& world, int64_t v) {
  auto t = torch::tensor({v}, torch::kInt64);
  if (!world.AllReduce(t, dancegrpo::hpc::ReduceOp::kMax).ok()) return -1;
  return t.item<int64_t>();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  MPI_Init(&argc, &argv);
  int code = 0;
  {
    namespace m = dancegrpo::models;
    auto world = *dancegrpo::hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {1800});
    const int n = world->size();
    int64_t f = 0, h = 0, w = 0;
    if (std::sscanf(FLAGS_latent.c_str(), "%ld,%ld,%ld", &f, &h, &w) != 3 || f < 1 || h < 2 || w < 2) {
      if (world->rank() == 0) std::fprintf(stderr, "usp_bench: --latent=%s must be F,H,W\n", FLAGS_latent.c_str());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const auto dtype = FLAGS_precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
    auto c = *m::DitPreset("wan2.1-1.3b");
    c.layers = FLAGS_layers;
    torch::manual_seed(1);
    m::VideoDit dit(c);
    {
      torch::NoGradGuard ng;  // Wan's zero head would give zero gradients
      dit.head->head->weight.normal_(0, 0.02);
    }
    dit.to(dtype);
    auto chosen = dit.SetSequenceParallel(world, FLAGS_ulysses);
    if (!chosen.ok()) {
      if (world->rank() == 0) std::fprintf(stderr, "usp_bench: %s\n", chosen.status().ToString().c_str());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int u = *chosen, ring = n / u;
    const int64_t b = FLAGS_batch, tokens = f * (h / 2) * (w / 2);
    auto x = torch::randn({b, c.in_channels, f, h, w}).to(dtype);
    auto sigma = torch::full({b}, 0.5);
    m::Conditioning text;
    text.tokens = torch::randn({b, c.text_len, c.text_dim}).to(dtype);

    // Peak RSS above the RSS when the phase starts (ResetPeakRss makes VmHWM the current RSS).
    int64_t base = 0;
    auto start_peak = [&] {
      dancegrpo::hpc::ReleaseFreeMemory();
      dancegrpo::hpc::ResetPeakRss();
      base = dancegrpo::hpc::PeakRss();
    };
    auto timed = [&](bool backward) {
      double best = 1e30;
      for (int i = 0; i <= FLAGS_repeats; ++i) {
        world->Barrier().IgnoreError();
        const auto t0 = Clock::now();
        if (backward) {
          auto out = dit.Velocity(x, sigma, text);
          out.to(torch::kFloat).pow(2).mean().backward();
        } else {
          torch::NoGradGuard ng;
          dit.Velocity(x, sigma, text);
        }
        world->Barrier().IgnoreError();
        if (i > 0) best = std::min(best, Seconds(t0));  // i = 0 warms up
      }
      return best;
    };
    start_peak();
    const double forward = timed(false);
    const int64_t forward_peak = Max(*world, dancegrpo::hpc::PeakRss() - base);
    start_peak();
    const double train = timed(true);
    const int64_t train_peak = Max(*world, dancegrpo::hpc::PeakRss() - base);

    // The planner's count of the same evaluation (memory_plan.cc): the kept activations of
    // every block plus one block's backward working set, and the parameters' gradients; the
    // forward's widest working set.
    const auto family = m::DitFamily::Make(c);
    m::ActivationQuery q;
    q.tokens = tokens / n;
    q.full_tokens = tokens;
    q.text_tokens = c.text_len;
    q.sequence_parallel = n;
    q.ulysses = u;
    q.dtype_bytes = dtype == torch::kFloat32 ? 4 : 2;
    const int64_t s = q.dtype_bytes;
    int64_t parameters = 0;  // their gradients appear in the first backward
    for (const auto& p : dit.parameters()) parameters += p.numel();
    const double planned_train = static_cast<double>(
        b * s * (c.layers * family->BlockActivations(q) + family->BackwardWorkingSet(q)) + s * parameters);
    const double planned_forward = static_cast<double>(b * s * family->ForwardWorkingSet(q));
    if (world->rank() == 0) {
      const std::string layout = u == n      ? "Ulysses " + std::to_string(u)
                                 : u == 1    ? "ring " + std::to_string(ring)
                                             : "Ulysses " + std::to_string(u) + " x ring " + std::to_string(ring);
      std::printf(
          "| %-18s | %6ld | %9.0f | %9.0f | %8.0f MB | %8.0f MB | %8.0f MB | %8.0f MB |\n", layout.c_str(),
          static_cast<long>(tokens), b * tokens / forward, b * tokens / train, forward_peak / 1e6, planned_forward / 1e6,
          train_peak / 1e6, planned_train / 1e6);
    }
  }
  MPI_Finalize();
  return code;
}
