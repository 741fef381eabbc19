#include "tests/tiny_dit_trainer.h"

#include <torch/torch.h>

#include "models/dit/dit.h"
#include "models/text/text_encoder.h"
#include "world/toy_world.h"

namespace dancegrpo::testing {

TrainerConfig TinyDitConfig() {
  TrainerConfig c;
  c.iterations = 2;
  c.prompts_per_iteration = 2;
  c.group_size = 4;
  c.steps = 4;
  c.micro_batch = 2;
  c.clip_range = 0.2;
  c.optimizer.lr = 1e-3;
  // The equivalence tests compare runs whose gradients differ in their last bits: N ranks or
  // sequence parallelism sum each weight gradient in another order, and the BLAS picks other
  // kernels for other shapes (OpenBLAS's AVX2/AVX-512 small-matrix ones for short slices).
  // AdamW's first step is g / (|g| + eps): at eps = 1e-8 a noise-sized gradient near 1e-8 moves
  // its weight by a large part of lr either way, which put the masters 1-3e-5 apart with some
  // kernels. eps = 1e-6 keeps the comparisons about the sharded computation.
  c.optimizer.eps = 1e-6;
  c.latent_shape = {4, 2, 4, 4};
  return c;
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeTinyDitTrainer(const TrainerConfig& c,
                                                            std::shared_ptr<hpc::Communicator> world,
                                                            std::vector<torch::Tensor>* fp32_weights) {
  constexpr int kTargets = 3;
  torch::manual_seed(c.seed);
  auto dit = *models::DitPreset("tiny");
  models::TextEncoderConfig tc;
  tc.dim = dit.text_dim;
  tc.heads = 2;
  tc.layers = 1;
  auto encoder =
      std::make_shared<models::TrainableTextEncoder>(models::WordTokenizer({"target", "0", "1", "2"}, 4), tc);
  auto policy = std::make_shared<models::VideoDit>(dit);
  {
    torch::NoGradGuard ng;  // a non-zero head, so that samples differ and every step moves the weights
    policy->head->head->weight.normal_(0, 0.05);
  }
  if (c.lora.enabled()) {  // adapters over the base just drawn (A from the seed, B = 0)
    auto layers = models::AttachLora(*policy, c.lora, c.seed);
    if (!layers.ok()) return layers.status();
  }
  if (fp32_weights)
    for (const auto& p : policy->parameters()) fp32_weights->push_back(p.detach().clone());
  return Trainer::Create(c, policy, nullptr, encoder, nullptr,
                         {{std::make_shared<toy::TargetRegionReward>(kTargets, c.latent_shape, 3), 1.0}},
                         toy::TargetPrompts(kTargets), std::move(world));
}

torch::Tensor Masters(Trainer& trainer) {
  auto m = trainer.optimizer().GatherMasters();
  return m.ok() ? *m : torch::Tensor();
}

double RelativeDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace dancegrpo::testing
