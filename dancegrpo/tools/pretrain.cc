// pretrain: flow-matching training of the shapes-world base model (DiT + text encoder) on
// ground-truth clips of the training split. Writes the base checkpoint that GRPO starts from.
//   bazel run //dancegrpo/tools:pretrain -- --steps=1500 --out=$PWD/configs/base/shapes_base.safetensors
// Rectified flow: x_s = (1 - s) x_data + s noise with s ~ U(0, 1); the model learns the
// velocity noise - x_data (so x_data = x_s - s v, the x0_hat of dancegrpo/sde.h).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "dancegrpo/shapes_setup.h"
#include "gflags/gflags.h"
#include "world/shapes_world.h"

DEFINE_int32(steps, 1500, "optimizer steps");
DEFINE_int32(batch, 32, "clips per step");
DEFINE_double(lr, 1e-3, "AdamW learning rate");
DEFINE_uint64(seed, 1, "random seed");
DEFINE_string(out, "configs/base/shapes_base.safetensors", "where to write the base checkpoint");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("flow-matching pretraining of the shapes-world base model");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto models = dancegrpo::MakeShapesModels(FLAGS_seed);
  std::vector<torch::Tensor> params = models.dit->parameters();
  for (const auto& p : models.text->module()->parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(FLAGS_lr).weight_decay(1e-4));
  const auto specs = dancegrpo::world::TrainSpecs();
  std::mt19937_64 rng(FLAGS_seed);
  const auto start = std::chrono::steady_clock::now();
  double running = 0;
  for (int step = 1; step <= FLAGS_steps; ++step) {
    std::vector<torch::Tensor> clips;
    std::vector<std::string> texts;
    for (int i = 0; i < FLAGS_batch; ++i) {
      const auto& s = specs[rng() % specs.size()];
      clips.push_back(dancegrpo::world::Render(s, rng()));
      texts.push_back(dancegrpo::world::PromptText(s));
    }
    auto x = torch::stack(clips);
    auto noise = torch::randn_like(x);
    auto sigma = torch::rand({FLAGS_batch});
    auto s = sigma.view({-1, 1, 1, 1, 1});
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
      "pretrain --steps=" + std::to_string(FLAGS_steps) + " --batch=" + std::to_string(FLAGS_batch) +
          " --seed=" + std::to_string(FLAGS_seed));
  if (!status.ok()) {
    std::fprintf(stderr, "pretrain: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s\n", FLAGS_out.c_str());
  return 0;
}
