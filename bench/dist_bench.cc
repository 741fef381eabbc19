// Distributed GRPO iteration benchmark: per-iteration time and the share of it spent in
// collectives, for the tiny DiT policy on the toy target world. Run under mpirun with
// 1, 2 and 4 ranks (bench/run_dist_bench.sh does all three); the global batch is fixed,
// so more ranks means fewer samples per rank. Prints numbers; never fails on time.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdio>

#include "world/toy_world.h"
#include "dancegrpo/trainer.h"
#include "gflags/gflags.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/dit/dit.h"
#include "models/text/text_encoder.h"

DEFINE_string(preset, "tiny", "DiT preset");
DEFINE_int32(iterations, 4, "iterations (the first is a warm-up and not counted)");
DEFINE_int32(prompts, 4, "prompts per iteration");
DEFINE_int32(group_size, 4, "samples per prompt");
DEFINE_int32(steps, 6, "sampling steps");
DEFINE_int32(sp, 1, "sequence parallel size");
DEFINE_string(clip, "2x8x8", "latent clip FxHxW");

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  MPI_Init(&argc, &argv);
  {
    auto world = *dancegrpo::hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {300});
    int64_t f = 2, h = 8, w = 8;
    if (std::sscanf(FLAGS_clip.c_str(), "%ldx%ldx%ld", &f, &h, &w) != 3 || f < 1 || h < 1 || w < 1) {
      if (world->rank() == 0) std::fprintf(stderr, "--clip must be FxHxW with positive sizes\n");
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    auto dit = *dancegrpo::models::DitPreset(FLAGS_preset);
    const std::vector<int64_t> shape = {dit.in_channels, f, h, w};
    constexpr int kTargets = 4;
    torch::manual_seed(1);
    dancegrpo::models::TextEncoderConfig tc;
    tc.dim = dit.text_dim;
    tc.heads = 4;
    tc.layers = 1;
    auto encoder = std::make_shared<dancegrpo::models::TrainableTextEncoder>(
        dancegrpo::models::WordTokenizer({"target", "0", "1", "2", "3"}, 4), tc);
    dit.pooled_dim = dit.text_dim;
    auto policy = std::make_shared<dancegrpo::models::VideoDit>(dit);
    dancegrpo::TrainerConfig c;
    c.seed = 1;
    c.iterations = FLAGS_iterations;
    c.prompts_per_iteration = FLAGS_prompts;
    c.group_size = FLAGS_group_size;
    c.steps = FLAGS_steps;
    c.sequence_parallel = FLAGS_sp;
    c.latent_shape = shape;
    c.optimizer.lr = 1e-4;
    auto trainer = dancegrpo::Trainer::Create(
        c, policy, nullptr, encoder, nullptr,
        {{std::make_shared<dancegrpo::toy::TargetRegionReward>(kTargets, shape, 1), 1.0}},
        dancegrpo::toy::TargetPrompts(kTargets), world);
    if (!trainer.ok()) {
      if (world->rank() == 0) std::fprintf(stderr, "%s\n", std::string(trainer.status().message()).c_str());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    double total = 0, comm_at_start = 0;
    int counted = 0;
    auto status = (*trainer)->Run([&](const dancegrpo::IterationMetrics& m) {
      if (m.iteration == 0) {
        comm_at_start = (*trainer)->CommunicationSeconds();
        return;
      }
      total += m.seconds;
      ++counted;
    });
    const double comm = (*trainer)->CommunicationSeconds() - comm_at_start;
    // The slowest rank sets the pace: report the max over ranks.
    auto t = torch::tensor({total, comm}, torch::kFloat64);
    (void)world->AllReduce(t, dancegrpo::hpc::ReduceOp::kMax);
    if (status.ok() && world->rank() == 0 && counted > 0) {
      const auto& topo = (*trainer)->grid().topology;
      std::printf("ranks %d (dp %d x sp %d) | preset %s | %ld samples/iter | %.3f s/iter | comm %.3f s/iter (%.1f%%)\n",
                  topo.world_size, topo.dp, topo.sp, FLAGS_preset.c_str(),
                  static_cast<long>((*trainer)->layout().global_samples), t[0].item<double>() / counted,
                  t[1].item<double>() / counted, 100.0 * t[1].item<double>() / t[0].item<double>());
    } else if (!status.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", world->rank(), std::string(status.message()).c_str());
    }
  }
  MPI_Finalize();
  return 0;
}
