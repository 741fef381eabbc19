// pretrain: flow-matching training of the shapes-world base model (DiT + text encoder) on
// ground-truth clips of the training split. Writes the base checkpoint that GRPO starts from.
//   bazel run //world/tools:pretrain -- --steps=5000 --noise_min=0.6 --noise_max=0.8
//     --out=$PWD/configs/base/shapes_base.safetensors
// Rectified flow: x_s = (1 - s) x_data + s noise with s ~ U(noise_min, noise_max); the model
// learns the velocity noise - x_data (so x_data = x_s - s v, the x0_hat of dancegrpo/sde.h).
// Clips, noise and noise levels are drawn on the CPU whatever --device is, so a GPU run
// sees the same data as a CPU run with the same seed.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "world/shapes_setup.h"
#include "gflags/gflags.h"
#include "world/shapes_world.h"

DEFINE_int32(steps, 1500, "optimizer steps");
DEFINE_int32(batch, 32, "clips per step");
DEFINE_double(lr, 1e-3, "AdamW learning rate");
DEFINE_uint64(seed, 1, "random seed");
DEFINE_string(out, "configs/base/shapes_base.safetensors", "where to write the base checkpoint");
DEFINE_string(device, "cpu", "cpu, or cuda / cuda:N (needs a CUDA libtorch)");
DEFINE_double(noise_min, 0.0, "noise levels s are drawn uniformly from [noise_min, noise_max]");
DEFINE_double(noise_max, 1.0, "see --noise_min");
DEFINE_double(max_seconds, 0, "stop early and write the checkpoint after this many seconds (0 = no limit)");
DEFINE_double(final_lr_fraction, 1.0,
              "cosine decay of the learning rate to this fraction of --lr over the run (1 = constant); "
              "progress is the larger of step/steps and elapsed/max_seconds");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("flow-matching pretraining of the shapes-world base model");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_steps <= 0 || FLAGS_batch <= 0 || FLAGS_max_seconds < 0) {
    std::fprintf(stderr, "pretrain: --steps=%d and --batch=%d must be positive and --max_seconds=%g not negative\n",
                 FLAGS_steps, FLAGS_batch, FLAGS_max_seconds);
    return 2;
  }
  if (FLAGS_final_lr_fraction <= 0 || FLAGS_final_lr_fraction > 1) {
    std::fprintf(stderr, "pretrain: --final_lr_fraction=%g must be in (0, 1]\n", FLAGS_final_lr_fraction);
    return 2;
  }
  if (!(FLAGS_noise_min >= 0 && FLAGS_noise_min < FLAGS_noise_max && FLAGS_noise_max <= 1)) {
    std::fprintf(stderr, "pretrain: --noise_min=%g and --noise_max=%g must satisfy 0 <= min < max <= 1\n",
                 FLAGS_noise_min, FLAGS_noise_max);
    return 2;
  }
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(FLAGS_device);
  } catch (const std::exception&) {
    std::fprintf(stderr, "pretrain: --device=%s is not a device; use cpu, cuda or cuda:N\n", FLAGS_device.c_str());
    return 2;
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "pretrain: --device=%s but this libtorch sees no CUDA GPU; use --device=cpu\n",
                 FLAGS_device.c_str());
    return 2;
  }
  auto models = dancegrpo::MakeShapesModels(FLAGS_seed);
  models.dit->to(device);
  models.text->module()->to(device);
  std::vector<torch::Tensor> params = models.dit->parameters();
  for (const auto& p : models.text->module()->parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(FLAGS_lr).weight_decay(1e-4));
  const auto specs = dancegrpo::world::TrainSpecs();
  std::mt19937_64 rng(FLAGS_seed);
  const auto start = std::chrono::steady_clock::now();
  double running = 0;
  int step = 1;
  for (; step <= FLAGS_steps; ++step) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (FLAGS_max_seconds > 0 && elapsed > FLAGS_max_seconds) {
      std::printf("stopping at step %d: --max_seconds=%g reached\n", step - 1, FLAGS_max_seconds);
      break;
    }
    if (FLAGS_final_lr_fraction < 1) {
      double progress = static_cast<double>(step - 1) / FLAGS_steps;
      if (FLAGS_max_seconds > 0) progress = std::max(progress, elapsed / FLAGS_max_seconds);
      const double f = FLAGS_final_lr_fraction + (1 - FLAGS_final_lr_fraction) * 0.5 * (1 + std::cos(M_PI * progress));
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(FLAGS_lr * f);
    }
    std::vector<torch::Tensor> clips;
    std::vector<std::string> texts;
    for (int i = 0; i < FLAGS_batch; ++i) {
      const auto& s = specs[rng() % specs.size()];
      clips.push_back(dancegrpo::world::Render(s, rng()));
      texts.push_back(dancegrpo::world::PromptText(s));
    }
    auto x = torch::stack(clips);
    auto noise = torch::randn_like(x);
    auto sigma = FLAGS_noise_min + (FLAGS_noise_max - FLAGS_noise_min) * torch::rand({FLAGS_batch});
    auto s = sigma.view({-1, 1, 1, 1, 1});
    x = x.to(device);  // each .to is a no-op on the CPU
    noise = noise.to(device);
    sigma = sigma.to(device);
    s = s.to(device);
    auto xs = (1 - s) * x + s * noise;
    auto cond = models.text->Encode(texts);
    auto v = models.dit->Velocity(xs, sigma, *cond);
    auto loss = (v - (noise - x)).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    running = step == 1 ? loss.item<double>() : 0.98 * running + 0.02 * loss.item<double>();
    if (step % 100 == 0 || step == FLAGS_steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("step %d/%d | flow-matching loss %.4f | %.1f steps/s | ETA %.0f s\n", step, FLAGS_steps, running,
                  step / secs, secs / step * (FLAGS_steps - step));
      std::fflush(stdout);
    }
  }
  auto status = dancegrpo::SaveShapesBase(
      models, FLAGS_out,
      "pretrain --steps=" + std::to_string(std::min(step - 1, FLAGS_steps)) + " --batch=" + std::to_string(FLAGS_batch) +
          " --seed=" + std::to_string(FLAGS_seed) + " --lr=" + std::to_string(FLAGS_lr) +
          " --final_lr_fraction=" + std::to_string(FLAGS_final_lr_fraction) + " --noise_min=" +
          std::to_string(FLAGS_noise_min) + " --noise_max=" + std::to_string(FLAGS_noise_max) +
          " --device=" + FLAGS_device);
  if (!status.ok()) {
    std::fprintf(stderr, "pretrain: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s\n", FLAGS_out.c_str());
  return 0;
}
