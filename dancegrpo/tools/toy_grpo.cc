// toy_grpo: DanceGRPO on the toy target world (dancegrpo/toy_world.h), on one process.
// A quick, self-checking demonstration that the algorithm learns: it prints one progress
// line per iteration and, at the end, the mean reward of the first and last iterations.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "dancegrpo/toy_world.h"
#include "dancegrpo/trainer.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "models/mlp_velocity.h"

DEFINE_uint64(seed, 1, "random seed");
DEFINE_int64(iterations, 600, "GRPO iterations");
DEFINE_int32(targets, 4, "number of prompts (targets) in the toy world");
DEFINE_int32(prompts_per_iteration, 4, "prompts per iteration");
DEFINE_int32(group_size, 8, "samples per prompt (G)");
DEFINE_int32(steps, 8, "sampling steps (T)");
DEFINE_double(shift, 1.0, "time shift of the sigma schedule");
DEFINE_string(sde, "dancegrpo", "SDE variant: dancegrpo | flowgrpo");
DEFINE_double(eta, 0.3, "DanceGRPO SDE noise scale");
DEFINE_double(lr, 3e-3, "AdamW learning rate");
DEFINE_double(clip_range, 1e-4, "ratio clip range");
DEFINE_double(timestep_fraction, 0.6, "fraction of the trainable steps trained per sample");
DEFINE_int32(grad_accum_samples, 0, "samples per optimizer step; 0 = all of an iteration");
DEFINE_int32(best_of_n, 0, "best-of-n selection (0 = off)");
DEFINE_double(kl_beta, 0.0, "KL penalty to the initial policy");
DEFINE_bool(ema, false, "keep an EMA of the weights");
DEFINE_int32(log_every, 10, "print a progress line every N iterations");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("DanceGRPO on the toy target world");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  try {
    torch::manual_seed(FLAGS_seed);
    const std::vector<int64_t> shape = {4, 1, 2, 2};
    dancegrpo::models::MlpVelocityConfig mc;
    mc.latent_shape = shape;
    mc.condition_dim = FLAGS_targets;
    auto make_policy = [&] { return std::make_shared<dancegrpo::models::MlpVelocity>(mc); };
    auto policy = make_policy();
    auto reference = FLAGS_kl_beta > 0 ? make_policy() : nullptr;

    dancegrpo::TrainerConfig c;
    c.seed = FLAGS_seed;
    c.iterations = FLAGS_iterations;
    c.prompts_per_iteration = FLAGS_prompts_per_iteration;
    c.group_size = FLAGS_group_size;
    c.steps = FLAGS_steps;
    c.shift = FLAGS_shift;
    auto kind = dancegrpo::ParseSdeKind(FLAGS_sde);
    if (!kind.ok()) {
      std::fprintf(stderr, "--sde: %s\n", std::string(kind.status().message()).c_str());
      return 2;
    }
    c.sde.kind = *kind;
    c.sde.eta = FLAGS_eta;
    c.timestep_fraction = FLAGS_timestep_fraction;
    c.clip_range = FLAGS_clip_range;
    c.grad_accum_samples = FLAGS_grad_accum_samples;
    c.best_of_n = FLAGS_best_of_n;
    c.kl_beta = FLAGS_kl_beta;
    c.optimizer.lr = FLAGS_lr;
    c.optimizer.ema = FLAGS_ema;
    c.latent_shape = shape;

    auto reward = std::make_shared<dancegrpo::toy::TargetRegionReward>(FLAGS_targets, shape, FLAGS_seed);
    auto trainer = dancegrpo::Trainer::Create(
        c, policy, reference, std::make_shared<dancegrpo::toy::OneHotPromptEncoder>(FLAGS_targets), nullptr,
        {{reward, 1.0}}, dancegrpo::toy::TargetPrompts(FLAGS_targets));
    if (!trainer.ok()) {
      std::fprintf(stderr, "config error: %s\n", std::string(trainer.status().message()).c_str());
      return 2;
    }
    double first = -1, last = 0, elapsed = 0;
    auto status = (*trainer)->Run([&](const dancegrpo::IterationMetrics& m) {
      if (first < 0) first = m.reward_mean[0];
      last = m.reward_mean[0];
      elapsed += m.seconds;
      const int64_t done = m.iteration + 1;
      if (done % FLAGS_log_every == 0 || done == FLAGS_iterations || done == 1) {
        const double eta = elapsed / done * (FLAGS_iterations - done);
        std::printf("%s\n", dancegrpo::FormatProgress(m, FLAGS_iterations, eta).c_str());
        std::fflush(stdout);
      }
    });
    if (!status.ok()) {
      std::fprintf(stderr, "training failed: %s\n", std::string(status.message()).c_str());
      return 1;
    }
    std::printf("target reward: first iteration %.4f -> last iteration %.4f\n", first, last);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "libtorch error: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
