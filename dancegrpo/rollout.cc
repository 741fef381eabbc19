#include "dancegrpo/rollout.h"

#include <torch/torch.h>

#include "dancegrpo/rng.h"
#include "glog/logging.h"

namespace dancegrpo {

torch::Tensor GuidedVelocity(models::VelocityModel& policy, double cfg_scale, const torch::Tensor& x,
                             const torch::Tensor& sigma, const models::Conditioning& condition,
                             const models::Conditioning& null_condition) {
  // Inputs go to the policy's device; on the CPU these moves are no-ops (same bits).
  const auto device = policy.device();
  const auto x_dev = x.to(device), sigma_dev = sigma.to(device);
  const auto cond = condition.To(device);
  torch::Tensor v;
  if (cfg_scale == 1.0) {
    v = policy.Velocity(x_dev, sigma_dev, cond);
  } else {
    const int64_t b = x.size(0);
    CHECK(null_condition.batch() > 0) << "classifier-free guidance needs the null condition";
    auto null_rows = null_condition.Rows(torch::zeros({b}, torch::kLong)).To(device);
    // One batched evaluation of [conditional; unconditional].
    auto both = policy.Velocity(torch::cat({x_dev, x_dev}), torch::cat({sigma_dev, sigma_dev}),
                                models::Conditioning::Cat({cond, null_rows}));
    auto v_cond = both.narrow(0, 0, b);
    auto v_uncond = both.narrow(0, b, b);
    v = v_uncond + cfg_scale * (v_cond - v_uncond);
  }
  return v;
}

SdeStepResult PolicyStep(models::VelocityModel& policy, const SdeConfig& sde, double cfg_scale,
                         const torch::Tensor& x, const torch::Tensor& sigma,
                         const torch::Tensor& sigma_next, const models::Conditioning& condition,
                         const models::Conditioning& null_condition, const torch::Tensor& noise,
                         const torch::Tensor& given_next) {
  auto v = GuidedVelocity(policy, cfg_scale, x, sigma, condition, null_condition);
  const auto device = v.device();
  auto to = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
  return SdeStep(sde, to(x), v, to(sigma), to(sigma_next), to(noise), to(given_next));
}

torch::Tensor InitialNoise(const RolloutConfig& config, int64_t iteration, int64_t prompt_slot,
                           int64_t member) {
  RandomKey key{config.seed, RandomStream::kInitialNoise, iteration, prompt_slot,
                config.shared_noise ? -1 : member, -1};
  return KeyedNormal(key, config.latent_shape);
}

std::vector<std::pair<int64_t, int64_t>> MicroBatches(int64_t n, int micro_batch) {
  const int64_t b = micro_batch > 0 ? micro_batch : std::max<int64_t>(n, 1);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t s = 0; s < n; s += b) out.emplace_back(s, std::min(n, s + b));
  return out;
}

SdeWindow WindowForIteration(const SdeWindow& window, uint64_t seed, int64_t iteration, int steps) {
  if (!window.random) return window;
  const int positions = steps - window.size;  // begins 0..T-1-size keep it off the last step
  CHECK(window.size >= 1 && positions >= 1) << "random SDE window of " << window.size << " steps for T = " << steps;
  const auto perm = KeyedPermutation({seed, RandomStream::kSdeWindow, iteration, -1, -1, -1}, positions);
  return {static_cast<int>(perm[0]), window.size, false};
}

Trajectories Rollout(models::VelocityModel& policy, const RolloutConfig& config,
                     const std::vector<double>& sigmas, int64_t iteration,
                     const std::vector<SampleId>& samples, const models::Conditioning& conditions,
                     const models::Conditioning& null_condition, const MicroBatchDone& micro_batch_done) {
  torch::NoGradGuard no_grad;
  const int steps = static_cast<int>(sigmas.size()) - 1;
  SdeConfig sde = WithSchedule(config.sde, sigmas);
  sde.window = WindowForIteration(config.sde.window, config.seed, iteration, steps);
  const int64_t n = static_cast<int64_t>(samples.size());
  CHECK_EQ(conditions.batch(), n) << "one condition row per sample";
  // The trajectories stay on the CPU (they can be large and go to HDF5); each micro-batch's
  // working latents live on the policy's device.
  const auto device = policy.device();

  Trajectories traj;
  traj.iteration = iteration;
  traj.sigmas = sigmas;
  for (const auto& s : samples) {
    traj.prompt_slot.push_back(s.prompt_slot);
    traj.member.push_back(s.member);
  }
  traj.conditions = conditions;
  traj.null_condition = null_condition;

  std::vector<int64_t> shape = {n, steps + 1};
  shape.insert(shape.end(), config.latent_shape.begin(), config.latent_shape.end());
  traj.latents = torch::empty(shape, torch::kFloat32);
  traj.log_probs = torch::empty({n, steps}, torch::kFloat32);
  std::vector<int64_t> x0_shape = {n};
  x0_shape.insert(x0_shape.end(), config.latent_shape.begin(), config.latent_shape.end());
  traj.final_x0 = torch::empty(x0_shape, torch::kFloat32);

  for (auto [begin, end] : MicroBatches(n, config.micro_batch)) {
    const int64_t b = end - begin;
    std::vector<torch::Tensor> init;
    for (int64_t i = begin; i < end; ++i)
      init.push_back(InitialNoise(config, iteration, traj.prompt_slot[i], traj.member[i]));
    auto x = torch::stack(init).to(device);
    auto cond = traj.conditions.Rows(torch::arange(begin, end, torch::kLong));
    traj.latents.select(1, 0).narrow(0, begin, b).copy_(x);
    for (int i = 0; i < steps; ++i) {
      auto sigma = torch::full({b}, sigmas[i], x.options().dtype(torch::kFloat32));
      auto sigma_next = torch::full({b}, sigmas[i + 1], x.options().dtype(torch::kFloat32));
      if (!sde.window.Contains(i)) {  // a deterministic step: no noise, no log-prob
        auto v = GuidedVelocity(policy, config.cfg_scale, x, sigma, cond, null_condition);
        auto next = OdeStep(x, v, sigma, sigma_next);
        traj.latents.select(1, i + 1).narrow(0, begin, b).copy_(next);
        traj.log_probs.select(1, i).narrow(0, begin, b).zero_();
        if (i == steps - 1) traj.final_x0.narrow(0, begin, b).copy_(x - RowsLike(sigma, x) * v);
        x = next;
        continue;
      }
      std::vector<torch::Tensor> noise;
      for (int64_t s = begin; s < end; ++s) {
        RandomKey key{config.seed, RandomStream::kSdeNoise, iteration, traj.prompt_slot[s],
                      traj.member[s], i};
        noise.push_back(KeyedNormal(key, config.latent_shape));
      }
      auto step = PolicyStep(policy, sde, config.cfg_scale, x, sigma, sigma_next, cond,
                             null_condition, torch::stack(noise), torch::Tensor());
      traj.latents.select(1, i + 1).narrow(0, begin, b).copy_(step.next);
      traj.log_probs.select(1, i).narrow(0, begin, b).copy_(step.log_prob);
      if (i == steps - 1) traj.final_x0.narrow(0, begin, b).copy_(step.x0_hat);
      x = step.next;
    }
    if (micro_batch_done) micro_batch_done(traj, begin, end);
  }
  return traj;
}

}  // namespace dancegrpo
