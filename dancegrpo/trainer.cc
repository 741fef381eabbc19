#include "dancegrpo/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/advantage.h"
#include "dancegrpo/rng.h"
#include "dancegrpo/schedule.h"
#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status ValidateConfig(const TrainerConfig& c, size_t num_prompts) {
  if (num_prompts == 0) return absl::InvalidArgumentError("the prompt set is empty; give at least one prompt");
  if (c.iterations < 0) return absl::InvalidArgumentError("iterations must be >= 0");
  if (c.prompts_per_iteration < 1)
    return absl::InvalidArgumentError(absl::StrCat("prompts_per_iteration = ", c.prompts_per_iteration, "; it must be >= 1"));
  if (c.group_size < 1)
    return absl::InvalidArgumentError(absl::StrCat("group_size = ", c.group_size, "; it must be >= 1"));
  if (c.group_size < 2 && !c.global_normalization)
    return absl::InvalidArgumentError(
        "group_size = 1 cannot be normalised per group; use group_size >= 2 or global normalisation");
  if (c.latent_shape.size() != 4)
    return absl::InvalidArgumentError("latent_shape must be [C, F, H, W]");
  if (c.micro_batch < 0 || c.grad_accum_samples < 0)
    return absl::InvalidArgumentError("micro_batch and grad_accum_samples must be >= 0");
  if (c.best_of_n != 0 && (c.best_of_n < 2 || c.best_of_n % 2 || c.best_of_n > c.group_size))
    return absl::InvalidArgumentError(absl::StrCat("best_of_n = ", c.best_of_n,
                                                   "; use 0 (off) or an even n with 2 <= n <= group_size"));
  if (c.kl_beta < 0) return absl::InvalidArgumentError("kl_beta must be >= 0");
  return TrainedStepCount(c.steps, c.timestep_fraction).status();
}

}  // namespace

std::string FormatProgress(const IterationMetrics& m, int64_t total, double eta_seconds) {
  std::string rewards;
  for (size_t k = 0; k < m.reward_names.size(); ++k) {
    absl::StrAppendFormat(&rewards, " %s %.4f±%.3f", m.reward_names[k], m.reward_mean[k], m.reward_std[k]);
  }
  const int64_t eta = static_cast<int64_t>(std::max(0.0, eta_seconds));
  return absl::StrFormat(
      "iter %d/%d |%s | ratio %.4f clip %.3f kl %.2e | grad %.3g | %.1f samples/s | ETA %02d:%02d:%02d",
      m.iteration + 1, total, rewards, m.update.mean_ratio, m.update.clip_fraction, m.update.approx_kl,
      m.update.grad_norm, m.samples_per_second, eta / 3600, (eta / 60) % 60, eta % 60);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const TrainerConfig& config, std::shared_ptr<models::VelocityModel> policy,
    std::shared_ptr<models::VelocityModel> reference, std::shared_ptr<models::PromptEncoder> encoder,
    std::shared_ptr<models::LatentDecoder> decoder, std::vector<rewards::WeightedReward> rewards,
    std::vector<rewards::Prompt> prompts) {
  DGRPO_RETURN_IF_ERROR(ValidateConfig(config, prompts.size()));
  if (!policy || !encoder) return absl::InvalidArgumentError("a policy and a prompt encoder are required");
  if (rewards.empty()) return absl::InvalidArgumentError("no reward configured: add at least one reward");
  std::unique_ptr<Trainer> t(new Trainer());
  t->config_ = config;
  DGRPO_ASSIGN_OR_RETURN(t->sigmas_, SigmaSchedule(config.steps, config.shift));
  t->policy_ = std::move(policy);
  t->encoder_ = std::move(encoder);
  t->decoder_ = std::move(decoder);
  t->rewards_ = std::move(rewards);
  t->prompts_ = std::move(prompts);
  if (config.kl_beta > 0) {
    if (!reference) return absl::InvalidArgumentError("kl_beta > 0 needs a reference policy instance");
    auto src = t->policy_->named_parameters();
    auto dst = reference->named_parameters();
    if (src.size() != dst.size())
      return absl::InvalidArgumentError("the reference policy's parameters differ from the policy's");
    torch::NoGradGuard no_grad;
    for (const auto& item : src) {
      auto* d = dst.find(item.key());
      if (d == nullptr || !d->sizes().equals(item.value().sizes()))
        return absl::InvalidArgumentError(absl::StrCat("reference policy lacks parameter '", item.key(),
                                                       "' with the policy's shape"));
      d->copy_(item.value());
      d->set_requires_grad(false);
    }
    t->reference_ = std::move(reference);
  }
  t->optimizer_ = std::make_unique<PolicyOptimizer>(t->policy_->parameters(), config.optimizer);
  if (config.cfg_scale != 1.0) {
    DGRPO_ASSIGN_OR_RETURN(t->null_condition_, t->encoder_->Encode({""}));
  }
  return t;
}

std::vector<int64_t> Trainer::PromptsFor(int64_t iteration) const {
  const int64_t n = static_cast<int64_t>(prompts_.size());
  std::vector<int64_t> out;
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm;
  for (int64_t j = 0; j < config_.prompts_per_iteration; ++j) {
    const int64_t global = iteration * config_.prompts_per_iteration + j;
    const int64_t epoch = global / n;
    if (epoch != cached_epoch) {
      perm = KeyedPermutation({config_.seed, RandomStream::kPrompts, epoch, -1, -1, -1}, n);
      cached_epoch = epoch;
    }
    out.push_back(perm[global % n]);
  }
  return out;
}

absl::StatusOr<IterationMetrics> Trainer::Step() {
  const auto start = Clock::now();
  IterationMetrics m;
  m.iteration = iteration_;
  const auto prompt_ids = PromptsFor(iteration_);
  std::vector<int64_t> slots(prompt_ids.size());
  std::iota(slots.begin(), slots.end(), 0);
  std::vector<std::string> texts;
  for (int64_t id : prompt_ids) texts.push_back(prompts_[id].text);
  DGRPO_ASSIGN_OR_RETURN(const auto conditions, encoder_->Encode(texts));

  RolloutConfig rc;
  rc.seed = config_.seed;
  rc.group_size = config_.group_size;
  rc.shared_noise = config_.shared_noise;
  rc.micro_batch = config_.micro_batch;
  rc.cfg_scale = config_.cfg_scale;
  rc.sde = config_.sde;
  rc.latent_shape = config_.latent_shape;
  const auto traj = Rollout(*policy_, rc, sigmas_, iteration_, slots, conditions, null_condition_);
  m.samples = traj.num_samples();

  torch::Tensor clips;
  {
    torch::NoGradGuard no_grad;
    clips = decoder_ ? decoder_->Decode(traj.final_x0) : traj.final_x0;
  }
  std::vector<rewards::Prompt> sample_prompts;
  for (int64_t i = 0; i < m.samples; ++i) sample_prompts.push_back(prompts_[prompt_ids[i / config_.group_size]]);
  DGRPO_ASSIGN_OR_RETURN(auto scores, rewards::ScoreAll(rewards_, clips, sample_prompts));
  m.rollout_seconds = SecondsSince(start);

  AdvantageConfig ac;
  ac.group_size = config_.group_size;
  ac.adv_clip_max = config_.adv_clip_max;
  ac.global_normalization = config_.global_normalization;
  for (const auto& r : rewards_) ac.weights.push_back(r.weight);
  DGRPO_ASSIGN_OR_RETURN(auto advantages, ComputeAdvantages(scores, ac));
  std::vector<int64_t> train_samples(m.samples);
  std::iota(train_samples.begin(), train_samples.end(), 0);
  if (config_.best_of_n > 0) {
    DGRPO_ASSIGN_OR_RETURN(train_samples, BestOfN(advantages, config_.group_size, config_.best_of_n));
  }

  for (size_t k = 0; k < rewards_.size(); ++k) {
    const auto& r = scores[k];
    const double mean = std::accumulate(r.begin(), r.end(), 0.0) / r.size();
    double ss = 0;
    for (double v : r) ss += (v - mean) * (v - mean);
    m.reward_names.push_back(rewards_[k].reward->name());
    m.reward_mean.push_back(mean);
    m.reward_std.push_back(r.size() > 1 ? std::sqrt(ss / (r.size() - 1)) : 0.0);
  }

  UpdateConfig uc;
  uc.seed = config_.seed;
  uc.timestep_fraction = config_.timestep_fraction;
  uc.clip_range = config_.clip_range;
  uc.grad_accum_samples =
      config_.grad_accum_samples > 0 ? config_.grad_accum_samples : static_cast<int>(train_samples.size());
  uc.micro_batch = config_.micro_batch;
  uc.cfg_scale = config_.cfg_scale;
  uc.kl_beta = config_.kl_beta;
  uc.sde = config_.sde;
  const auto update_start = Clock::now();
  DGRPO_ASSIGN_OR_RETURN(m.update, UpdatePolicy(*policy_, reference_.get(), *optimizer_, uc, traj,
                                                advantages, train_samples));
  m.update_seconds = SecondsSince(update_start);
  m.seconds = SecondsSince(start);
  m.samples_per_second = m.samples / std::max(m.seconds, 1e-9);
  ++iteration_;
  return m;
}

absl::Status Trainer::Run(const std::function<void(const IterationMetrics&)>& on_iteration) {
  while (iteration_ < config_.iterations) {
    DGRPO_ASSIGN_OR_RETURN(auto m, Step());
    if (on_iteration) on_iteration(m);
  }
  return absl::OkStatus();
}

}  // namespace dancegrpo
