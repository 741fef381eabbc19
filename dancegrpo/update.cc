#include "dancegrpo/update.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "dancegrpo/rng.h"
#include "hpc/fault_injection.h"
#include "glog/logging.h"

namespace dancegrpo {

absl::StatusOr<std::vector<int64_t>> TrainableSteps(int steps, const SdeWindow& window) {
  if (steps < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling steps = ", steps, ": the last step is never trained, so at least 2 are needed"));
  }
  // A begin that would be ignored is refused rather than silently dropped.
  if (window.random && (window.size < 1 || window.begin != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("random SDE window of size ", window.size, " and begin ",
                                                   window.begin, ": it needs a size >= 1 (e.g. 5) and draws its "
                                                   "begin per iteration, so leave the begin at 0"));
  }
  if (window.all() && window.begin != 0) {
    return absl::InvalidArgumentError(absl::StrCat("SDE window begin ", window.begin,
                                                   " with size 0 (every step stochastic); give a size too"));
  }
  if (!window.all() && (window.begin < 0 || window.size < 0 || window.begin + window.size > steps - 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SDE window of ", window.size, " step(s) ", window.random ? "(random)" : absl::StrCat("from step ", window.begin),
        " does not fit the trainable steps 0..", steps - 2, " of T = ", steps,
        " (the last step is never trained); use begin >= 0 and begin + size <= ", steps - 1,
        ", or size 0 for every step"));
  }
  std::vector<int64_t> out;
  for (int t = 0; t < steps - 1; ++t)
    if (window.Contains(t)) out.push_back(t);
  return out;
}

absl::StatusOr<int> TrainedStepCount(int steps, double timestep_fraction, const SdeWindow& window) {
  // Validates the window; a random one (begin 0 until resolved) counts the same wherever it lands.
  auto trainable = TrainableSteps(steps, window);
  if (!trainable.ok()) return trainable.status();
  if (!(timestep_fraction > 0 && timestep_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestep_fraction = ", timestep_fraction, "; it must be in (0, 1]"));
  }
  const int n = static_cast<int>(trainable->size());
  // The small slack keeps e.g. 15 * 0.6 at 9, not 8.999...
  const int count = static_cast<int>(std::floor(n * timestep_fraction + 1e-9));
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("floor(", n, " trainable steps * timestep_fraction ",
                                                   timestep_fraction,
                                                   ") = 0 trained steps; raise timestep_fraction, T or the SDE window"));
  }
  return count;
}

std::vector<int64_t> TrainedTimesteps(uint64_t seed, int64_t iteration, int64_t prompt_slot,
                                      int64_t member, int steps, int count, const SdeWindow& window) {
  CHECK(!window.random) << "resolve a random SDE window with WindowForIteration first";
  auto trainable = TrainableSteps(steps, window);
  CHECK(trainable.ok()) << trainable.status();
  auto perm = KeyedPermutation({seed, RandomStream::kTimesteps, iteration, prompt_slot, member, -1},
                               static_cast<int64_t>(trainable->size()));
  perm.resize(count);
  for (auto& t : perm) t = (*trainable)[t];
  return perm;
}

absl::StatusOr<UpdateStats> UpdatePolicy(models::VelocityModel& policy,
                                         models::VelocityModel* reference,
                                         hpc::ShardedAdamW& optimizer, const UpdateConfig& config,
                                         const Trajectories& traj,
                                         const std::vector<double>& advantages,
                                         const std::vector<int64_t>& samples, double loss_scale) {
  const int64_t n = traj.num_samples();
  if (static_cast<int64_t>(advantages.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(advantages.size(), " advantages for ", n, " samples"));
  }
  if (config.optimizer_steps < 1) return absl::InvalidArgumentError("optimizer_steps must be >= 1");
  const auto chunks = MicroBatches(n, config.micro_batch);
  if (config.optimizer_steps > 1) {
    if (config.micro_batch < 1 || n % (static_cast<int64_t>(config.micro_batch) * config.optimizer_steps) != 0 ||
        config.first_global_sample % config.micro_batch != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.optimizer_steps, " optimizer steps per iteration need micro_batch > 0 and the ", n,
          " samples of each rank to be a multiple of micro_batch (", config.micro_batch, ") x steps (",
          config.optimizer_steps, "); adjust grad_accum_samples, micro_batch or the batch"));
    }
  }
  if (config.kl_beta > 0 && reference == nullptr) {
    return absl::InvalidArgumentError("kl_beta > 0 needs a reference policy");
  }
  // Validates the window (fixed or random) before resolving it for this iteration.
  auto count_or = TrainedStepCount(traj.steps(), config.timestep_fraction, config.sde.window);
  if (!count_or.ok()) return count_or.status();
  const SdeWindow window = WindowForIteration(config.sde.window, config.seed, traj.iteration, traj.steps());
  const int n_steps = *count_or;
  const SdeConfig sde = WithSchedule(config.sde, traj.sigmas);
  const double norm = loss_scale;

  std::vector<char> selected(n, 0);
  for (int64_t s : samples) {
    if (s < 0 || s >= n) return absl::InvalidArgumentError(absl::StrCat("sample index ", s, " out of range"));
    selected[s] = 1;
  }
  std::vector<float> sigma_values(traj.sigmas.begin(), traj.sigmas.end());
  const auto sigma_table = torch::tensor(sigma_values, torch::kFloat32);

  UpdateStats stats;
  stats.ratio_min = INFINITY;
  stats.ratio_max = -INFINITY;
  double ratio_sum = 0, clipped = 0, approx_kl = 0, kl_ref = 0, grad_norm_sum = 0;
  optimizer.ZeroGrad();

  // Optimizer step k takes the micro-batches whose global index is k modulo the number of
  // steps: a set that does not depend on how many ranks share the batch.
  const int64_t chunk_base = config.micro_batch > 0 ? config.first_global_sample / config.micro_batch : 0;
  for (int step = 0; step < config.optimizer_steps; ++step) {
  for (size_t chunk = 0; chunk < chunks.size(); ++chunk) {
    if ((chunk_base + static_cast<int64_t>(chunk)) % config.optimizer_steps != step) continue;
    const auto [begin, end] = chunks[chunk];
    std::vector<int64_t> rows;
    for (int64_t s = begin; s < end; ++s)
      if (selected[s]) rows.push_back(s);
    if (rows.empty()) continue;
    std::vector<std::vector<int64_t>> chosen;
    for (int64_t s : rows)
      chosen.push_back(TrainedTimesteps(config.seed, traj.iteration, traj.prompt_slot[s], traj.member[s],
                                        traj.steps(), n_steps, window));
    const auto row_index = torch::tensor(rows, torch::kLong);
    const auto condition = traj.conditions.Rows(row_index);
    std::vector<double> adv_rows;
    for (int64_t s : rows) adv_rows.push_back(advantages[s]);
    const auto adv_cpu = torch::tensor(adv_rows, torch::kFloat64).to(torch::kFloat32);

    for (int k = 0; k < n_steps; ++k) {
      std::vector<int64_t> t_values;
      for (const auto& c : chosen) t_values.push_back(c[k]);
      const auto t = torch::tensor(t_values, torch::kLong);
      const auto x = traj.latents.index({row_index, t});
      const auto x_next = traj.latents.index({row_index, t + 1});
      const auto sigma = sigma_table.index_select(0, t);
      const auto sigma_next = sigma_table.index_select(0, t + 1);
      const auto old_log_prob_cpu = traj.log_probs.index({row_index, t});

      auto step = PolicyStep(policy, sde, config.cfg_scale, x, sigma, sigma_next, condition,
                             traj.null_condition, torch::Tensor(), x_next);
      const auto old_log_prob = old_log_prob_cpu.to(step.log_prob.device());
      const auto adv = adv_cpu.to(step.log_prob.device());
      auto ratio = torch::exp(step.log_prob - old_log_prob);
      auto unclipped = -adv * ratio;
      auto clipped_loss = -adv * torch::clamp(ratio, 1.0 - config.clip_range, 1.0 + config.clip_range);
      auto loss = torch::max(unclipped, clipped_loss).sum() * norm;
      if (config.kl_beta > 0) {
        torch::Tensor ref_mean;
        {
          torch::NoGradGuard no_grad;
          ref_mean = PolicyStep(*reference, sde, config.cfg_scale, x, sigma, sigma_next, condition,
                                traj.null_condition, torch::Tensor(), x_next)
                         .mean;
        }
        std::vector<int64_t> dims;
        for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
        auto kl = ((step.mean - ref_mean).pow(2) / (2.0 * step.std.pow(2))).mean(dims);
        loss = loss + config.kl_beta * kl.sum() * norm;
        kl_ref += kl.sum().item<double>();
      }
      loss.backward();

      const auto r = ratio.detach();
      const auto diff = (step.log_prob.detach() - old_log_prob);
      stats.loss += loss.item<double>();
      ratio_sum += r.sum().item<double>();
      stats.ratio_min = std::min(stats.ratio_min, r.min().item<double>());
      stats.ratio_max = std::max(stats.ratio_max, r.max().item<double>());
      clipped += ((r - 1.0).abs() > config.clip_range).sum().item<double>();
      approx_kl += (0.5 * diff.pow(2)).sum().item<double>();
      stats.trained_pairs += static_cast<int64_t>(rows.size());
    }
  }
    // Every rank takes every step, with zero gradients if none of its samples fell in it.
    auto grad_norm = optimizer.Step();
    if (!grad_norm.ok()) return grad_norm.status();
    if (std::isfinite(*grad_norm)) {
      grad_norm_sum += *grad_norm;
      ++stats.optimizer_steps;
    } else {
      ++stats.skipped_steps;  // every rank skipped it alike (the norm is global)
    }
    hpc::FaultPoint("update", traj.iteration);
  }
  if (stats.trained_pairs > 0) {
    stats.mean_ratio = ratio_sum / stats.trained_pairs;
    stats.clip_fraction = clipped / stats.trained_pairs;
    stats.approx_kl = approx_kl / stats.trained_pairs;
    stats.kl_to_reference = kl_ref / stats.trained_pairs;
  }
  if (stats.optimizer_steps > 0) stats.grad_norm = grad_norm_sum / stats.optimizer_steps;
  return stats;
}

}  // namespace dancegrpo
