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
#include "dancegrpo/trainable.h"
#include "dancegrpo/trajectory_store.h"
#include "hpc/fault_injection.h"
#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {

using Clock = std::chrono::steady_clock;

// The reference policy of a LoRA run: the policy itself with its adapters switched off.
class LoraBase : public models::VelocityModel {
 public:
  explicit LoraBase(std::shared_ptr<models::VelocityModel> policy)
      : policy_(std::move(policy)), adapted_(models::AdaptedLayers(*policy_)) {}
  torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                         const models::Conditioning& condition) override {
    models::LoraDisabled base(adapted_);
    return policy_->Velocity(x, sigma, condition);
  }

 private:
  std::shared_ptr<models::VelocityModel> policy_;
  std::vector<models::LoraLinearImpl*> adapted_;  // found once, not on every reference forward
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Gathers this rank's scores [K][n] over `comm` into [K][comm.size * n], in rank order.
absl::StatusOr<std::vector<std::vector<double>>> GatherScores(const std::vector<std::vector<double>>& local,
                                                              hpc::Communicator& comm) {
  const int64_t k = static_cast<int64_t>(local.size()), n = static_cast<int64_t>(local[0].size());
  auto mine = torch::empty({k, n}, torch::kFloat64);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) mine[i][j] = local[i][j];
  auto all = torch::empty({comm.size(), k, n}, torch::kFloat64);
  DGRPO_RETURN_IF_ERROR(comm.AllGather(mine, all));
  auto by_reward = all.permute({1, 0, 2}).reshape({k, comm.size() * n}).contiguous();
  std::vector<std::vector<double>> out(k);
  for (int64_t i = 0; i < k; ++i) {
    auto row = by_reward[i];
    out[i].assign(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
  }
  return out;
}

}  // namespace

std::string FormatProgress(const IterationMetrics& m, int64_t total, double eta_seconds) {
  std::string rewards;
  for (size_t k = 0; k < m.reward_names.size(); ++k) {
    absl::StrAppendFormat(&rewards, " %s %.4f±%.3f", m.reward_names[k], m.reward_mean[k], m.reward_std[k]);
  }
  const int64_t eta = static_cast<int64_t>(std::max(0.0, eta_seconds));
  const std::string skipped =
      m.update.skipped_steps > 0 ? absl::StrCat(" (", m.update.skipped_steps, " step(s) skipped: non-finite)") : "";
  return absl::StrFormat(
      "iter %d/%d |%s | ratio %.4f clip %.3f kl %.2e | grad %.3g%s | %.1f samples/s | ETA %02d:%02d:%02d",
      m.iteration + 1, total, rewards, m.update.mean_ratio, m.update.clip_fraction, m.update.approx_kl,
      m.update.grad_norm, skipped, m.samples_per_second, eta / 3600, (eta / 60) % 60, eta % 60);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const TrainerConfig& config, std::shared_ptr<models::VelocityModel> policy,
    std::shared_ptr<models::VelocityModel> reference, std::shared_ptr<models::PromptEncoder> encoder,
    std::shared_ptr<models::LatentDecoder> decoder, std::vector<rewards::WeightedReward> rewards,
    std::vector<rewards::Prompt> prompts, std::shared_ptr<hpc::Communicator> world,
    std::shared_ptr<hpc::Communicator> data_world) {
  DGRPO_RETURN_IF_ERROR(ValidateTrainerConfig(config));
  if (prompts.empty()) return absl::InvalidArgumentError("the prompt set is empty; give at least one prompt");
  if (config.latent_shape.size() != 4) return absl::InvalidArgumentError("latent_shape must be [C, F, H, W]");
  if (!policy || !encoder) return absl::InvalidArgumentError("a policy and a prompt encoder are required");
  if (rewards.empty()) return absl::InvalidArgumentError("no reward configured: add at least one reward");
  if (!world) world = std::make_shared<hpc::LocalCommunicator>();
  if (data_world && data_world->size() != world->size())
    return absl::InvalidArgumentError("the data-plane communicator must span the same ranks as the world");
  std::unique_ptr<Trainer> t(new Trainer());
  t->config_ = config;
  DGRPO_ASSIGN_OR_RETURN(t->grid_, hpc::ProcessGrid::Create(world, config.sequence_parallel));
  t->data_grid_ = t->grid_;
  if (data_world) {
    DGRPO_ASSIGN_OR_RETURN(t->data_grid_, hpc::ProcessGrid::Create(data_world, config.sequence_parallel));
  }
  DGRPO_ASSIGN_OR_RETURN(t->layout_,
                         hpc::SampleLayout::Make(config.prompts_per_iteration, config.group_size, t->grid_.topology));
  const int64_t trained = t->TrainedSamplesPerIteration();
  if (config.grad_accum_samples > 0 && trained % config.grad_accum_samples != 0) {
    return absl::InvalidArgumentError(absl::StrCat("grad_accum_samples = ", config.grad_accum_samples,
                                                   " does not divide the ", trained,
                                                   " samples trained per iteration; choose a divisor"));
  }
  if (config.global_normalization || config.pooled_std) {
    DGRPO_ASSIGN_OR_RETURN(t->group_comm_, t->grid_.dp->Split(0, t->grid_.topology.dp_rank));
  } else {
    DGRPO_ASSIGN_OR_RETURN(t->group_comm_, t->grid_.GroupCommunicator(t->layout_));
  }
  DGRPO_ASSIGN_OR_RETURN(t->sigmas_, SigmaSchedule(config.steps, config.shift));
  t->policy_ = std::move(policy);
  if (models::HasLora(*t->policy_) != config.lora.enabled())
    return absl::InvalidArgumentError(config.lora.enabled()
                                          ? "config.lora is set but the policy has no LoRA adapters (AttachLora)"
                                          : "the policy has LoRA adapters: describe them in config.lora");
  // Mixed precision and devices: the fp32 values are kept (on the CPU) to seed the
  // optimizer's fp32 masters, then the policy becomes its compute copy.
  std::vector<std::string> names;
  for (const auto& p : t->policy_->named_parameters()) names.push_back(p.key());
  DGRPO_ASSIGN_OR_RETURN(const auto selected, SelectTrainable(names, config.trainable));
  if (config.zero_stage == 3) {
    // ZeRO-3: the blocks keep only this rank's slices (the tool may have sharded them already,
    // one rank at a time, to bound the memory of loading).
    t->sharded_ = std::dynamic_pointer_cast<hpc::ShardedParameters>(t->policy_->parameter_gatherer());
    if (!t->sharded_) {
      DGRPO_ASSIGN_OR_RETURN(t->sharded_, ShardPolicy(*t->policy_, config.trainable, t->data_grid_.world,
                                                      config.compute_dtype, config.device));
    }
  }
  std::vector<torch::Tensor> fp32_values;
  const bool compute_copy = config.compute_dtype != torch::kFloat32 || config.device != torch::Device(torch::kCPU);
  if (compute_copy) {
    torch::NoGradGuard no_grad;
    const auto params = t->policy_->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      if (selected[i]) fp32_values.push_back(params[i].detach().to(torch::kFloat32).clone());
    t->policy_->to(config.device, config.compute_dtype);
  }
  {
    const auto named = t->policy_->named_parameters();  // after the move: the live tensors
    for (size_t i = 0; i < named.size(); ++i) {
      if (selected[i]) {
        t->trained_.insert(named[i].key(), named[i].value());
      } else {
        named[i].value().set_requires_grad(false);  // frozen: no gradient, no optimizer state
      }
    }
  }
  if (config.sequence_parallel > 1) DGRPO_RETURN_IF_ERROR(t->policy_->SetSequenceParallel(t->data_grid_.sp));
  t->encoder_ = std::move(encoder);
  t->decoder_ = std::move(decoder);
  t->rewards_ = std::move(rewards);
  t->prompts_ = std::move(prompts);
  if (config.kl_beta > 0 && config.lora.enabled()) {
    t->reference_ = std::make_shared<LoraBase>(t->policy_);
  } else if (config.kl_beta > 0) {
    if (!reference) return absl::InvalidArgumentError("kl_beta > 0 needs a reference policy instance");
    if (compute_copy) reference->to(config.device, config.compute_dtype);
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
    if (config.sequence_parallel > 1) DGRPO_RETURN_IF_ERROR(reference->SetSequenceParallel(t->data_grid_.sp));
    t->reference_ = std::move(reference);
  }
  DGRPO_ASSIGN_OR_RETURN(t->optimizer_, hpc::ShardedAdamW::Create(t->trained_.values(), t->data_grid_.world,
                                                                  config.optimizer, t->sharded_));
  if (compute_copy) t->optimizer_->LoadFlat(t->optimizer_->Flatten(fp32_values));
  if (config.cfg_scale != 1.0) {
    torch::NoGradGuard no_grad;
    DGRPO_ASSIGN_OR_RETURN(t->null_condition_, t->encoder_->Encode({""}));
  }
  return t;
}

double Trainer::CommunicationSeconds() const {
  double total = grid_.world->seconds_in_collectives() + grid_.dp->seconds_in_collectives() +
                 grid_.sp->seconds_in_collectives() + group_comm_->seconds_in_collectives();
  if (data_grid_.world != grid_.world)
    total += data_grid_.world->seconds_in_collectives() + data_grid_.dp->seconds_in_collectives() +
             data_grid_.sp->seconds_in_collectives();
  return total;
}

int64_t Trainer::TrainedSamplesPerIteration() const {
  return config_.best_of_n > 0 ? static_cast<int64_t>(config_.prompts_per_iteration) * config_.best_of_n
                               : layout_.global_samples;
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

absl::StatusOr<models::Conditioning> Trainer::EncodeSamples(const std::vector<int64_t>& slots,
                                                            const std::vector<std::string>& texts) {
  // Each prompt is encoded once (samples of one prompt are consecutive), then repeated for
  // its samples; rollout and replay encode the same batch, so the conditions have the same
  // bits. The text encoder is frozen during GRPO: no graph flows into the update.
  std::vector<std::string> unique;
  std::vector<int64_t> row;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (i == 0 || slots[i] != slots[i - 1]) unique.push_back(texts[i]);
    row.push_back(static_cast<int64_t>(unique.size()) - 1);
  }
  absl::StatusOr<models::Conditioning> encoded;
  {
    torch::NoGradGuard no_grad;
    encoded = encoder_->Encode(unique);
  }
  if (!encoded.ok()) return encoded.status();
  return encoded->Rows(torch::tensor(row, torch::kLong));
}

absl::StatusOr<IterationMetrics> Trainer::Step() {
  const auto start = Clock::now();
  const int g = config_.group_size;
  IterationMetrics m;
  m.iteration = iteration_;
  m.samples = layout_.global_samples;

  // 1-2. This replica's samples of the global batch, and their rollout.
  const auto prompt_ids = PromptsFor(iteration_);
  std::vector<SampleId> samples;
  std::vector<rewards::Prompt> sample_prompts;
  for (int64_t i = layout_.first_sample; i < layout_.first_sample + layout_.samples_per_rank; ++i) {
    samples.push_back({i / g, i % g});
    sample_prompts.push_back(prompts_[prompt_ids[i / g]]);
  }
  std::vector<int64_t> slots;
  std::vector<std::string> texts;
  for (size_t i = 0; i < samples.size(); ++i) {
    slots.push_back(samples[i].prompt_slot);
    texts.push_back(sample_prompts[i].text);
  }
  DGRPO_ASSIGN_OR_RETURN(const auto conditions, EncodeSamples(slots, texts));
  RolloutConfig rc;
  rc.seed = config_.seed;
  rc.shared_noise = config_.shared_noise;
  rc.micro_batch = config_.micro_batch;
  rc.cfg_scale = config_.cfg_scale;
  rc.sde = config_.sde;
  rc.latent_shape = config_.latent_shape;
  last_trajectories_ = Rollout(*policy_, rc, sigmas_, iteration_, samples, conditions, null_condition_);
  const auto& traj = last_trajectories_;
  m.rollout_seconds = SecondsSince(start);
  hpc::FaultPoint("rollout", iteration_);
  const auto score_start = Clock::now();

  // 3. Decode and score.
  torch::Tensor clips = traj.final_x0;
  if (decoder_) {
    torch::NoGradGuard no_grad;
    DGRPO_ASSIGN_OR_RETURN(clips, decoder_->Decode(traj.final_x0));
    clips = clips.to(torch::kCPU, torch::kFloat32);  // rule rewards read CPU fp32; learned ones move it back
  }
  DGRPO_ASSIGN_OR_RETURN(auto scores, rewards::ScoreAll(rewards_, clips, sample_prompts));
  {
    std::vector<int64_t> shown;  // the first sample of each prompt on this rank
    for (size_t i = 0; i < samples.size() && shown.size() < 8; ++i)
      if (i == 0 || samples[i].prompt_slot != samples[i - 1].prompt_slot) shown.push_back(static_cast<int64_t>(i));
    last_samples_ = SampleShowcase{};
    last_samples_.clips = clips.index_select(0, torch::tensor(shown, torch::kLong).to(clips.device())).to(torch::kCPU);
    for (const auto& r : rewards_) last_samples_.reward_names.push_back(r.reward->name());
    for (int64_t i : shown) {
      last_samples_.prompts.push_back(sample_prompts[i].text);
      last_samples_.rewards.emplace_back();
      for (const auto& per_reward : scores) last_samples_.rewards.back().push_back(per_reward[i]);
    }
  }
  m.reward_seconds = SecondsSince(score_start);
  if (phase_hook_) phase_hook_("rollout");

  // 4. Advantages over the span of samples this rank can see after the gather: its
  // sampling group(s), or every sample for global normalisation or a pooled std.
  std::vector<std::vector<double>> span_scores = scores;
  int64_t span_begin = layout_.first_sample;
  if (group_comm_->size() > 1) {
    DGRPO_ASSIGN_OR_RETURN(span_scores, GatherScores(scores, *group_comm_));
    span_begin -= group_comm_->rank() * layout_.samples_per_rank;
  }
  AdvantageConfig ac;
  ac.group_size = g;
  ac.adv_clip_max = config_.adv_clip_max;
  ac.global_normalization = config_.global_normalization;
  ac.pooled_std = config_.pooled_std;
  for (const auto& r : rewards_) ac.weights.push_back(r.weight);
  DGRPO_ASSIGN_OR_RETURN(auto span_adv, ComputeAdvantages(span_scores, ac));
  const int64_t offset = layout_.first_sample - span_begin, n_local = layout_.samples_per_rank;
  std::vector<double> advantages(span_adv.begin() + offset, span_adv.begin() + offset + n_local);
  std::vector<int64_t> train_samples;
  if (config_.best_of_n > 0) {
    DGRPO_ASSIGN_OR_RETURN(auto kept, BestOfN(span_adv, g, config_.best_of_n));
    for (int64_t k : kept)
      if (k >= offset && k < offset + n_local) train_samples.push_back(k - offset);
  } else {
    train_samples.resize(n_local);
    std::iota(train_samples.begin(), train_samples.end(), 0);
  }

  // Global reward statistics over the replicas: sums, sums of squares.
  const int64_t k_rewards = static_cast<int64_t>(rewards_.size());
  auto moments = torch::zeros({2 * k_rewards}, torch::kFloat64);
  for (int64_t k = 0; k < k_rewards; ++k)
    for (double v : scores[k]) {
      moments[k] += v;
      moments[k_rewards + k] += v * v;
    }
  DGRPO_RETURN_IF_ERROR(grid_.dp->AllReduce(moments, hpc::ReduceOp::kSum));
  const double total = static_cast<double>(layout_.global_samples);
  for (int64_t k = 0; k < k_rewards; ++k) {
    const double sum = moments[k].item<double>(), sumsq = moments[k_rewards + k].item<double>();
    m.reward_names.push_back(rewards_[k].reward->name());
    m.reward_mean.push_back(sum / total);
    m.reward_std.push_back(total > 1 ? std::sqrt(std::max(0.0, (sumsq - sum * sum / total) / (total - 1))) : 0.0);
  }

  // 6. The trajectory shard.
  if (trajectory_writer_) {
    DGRPO_ASSIGN_OR_RETURN(const int n_steps,
                           TrainedStepCount(config_.steps, config_.timestep_fraction, config_.sde.window));
    const SdeWindow window = WindowForIteration(config_.sde.window, config_.seed, iteration_, config_.steps);
    auto timesteps = torch::empty({n_local, n_steps}, torch::kLong);
    for (int64_t i = 0; i < n_local; ++i) {
      const auto t = TrainedTimesteps(config_.seed, iteration_, traj.prompt_slot[i], traj.member[i], config_.steps,
                                      n_steps, window);
      for (int j = 0; j < n_steps; ++j) timesteps[i][j] = t[j];
    }
    auto record = MakeTrajectoryRecord(traj, trajectory_writer_->mode(), timesteps);
    record.rank = grid_.topology.world_rank;
    record.world_size = grid_.topology.world_size;
    record.seed = config_.seed;
    record.micro_batch = config_.micro_batch;
    record.first_global_sample = layout_.first_sample;
    record.rewards = torch::empty({k_rewards, n_local}, torch::kFloat64);
    for (int64_t k = 0; k < k_rewards; ++k) {
      record.reward_names.push_back(rewards_[k].reward->name());
      for (int64_t i = 0; i < n_local; ++i) record.rewards[k][i] = scores[k][i];
    }
    record.advantages = torch::tensor(advantages, torch::kFloat64);
    record.trained = train_samples;
    for (int64_t i = 0; i < n_local; ++i) {
      record.prompt_ids.push_back(prompt_ids[traj.prompt_slot[i]]);
      record.prompt_texts.push_back(sample_prompts[i].text);
    }
    DGRPO_RETURN_IF_ERROR(trajectory_writer_->Append(record));
  }

  DGRPO_RETURN_IF_ERROR(Update(traj, advantages, train_samples, m));
  m.seconds = SecondsSince(start);
  m.samples_per_second = m.samples / std::max(m.seconds, 1e-9);
  ++iteration_;
  return m;
}

absl::Status Trainer::Update(const Trajectories& traj, const std::vector<double>& advantages,
                             const std::vector<int64_t>& train_samples, IterationMetrics& m) {
  // GA counts samples over all replicas; the objective is scaled by it.
  const int64_t global_trained = TrainedSamplesPerIteration();
  const int64_t ga_global = config_.grad_accum_samples > 0 ? config_.grad_accum_samples : global_trained;
  UpdateConfig uc;
  uc.seed = config_.seed;
  uc.timestep_fraction = config_.timestep_fraction;
  uc.clip_range = config_.clip_range;
  uc.optimizer_steps = static_cast<int>(global_trained / ga_global);
  uc.first_global_sample = layout_.first_sample;
  uc.micro_batch = config_.micro_batch;
  uc.cfg_scale = config_.cfg_scale;
  uc.kl_beta = config_.kl_beta;
  uc.sde = config_.sde;
  DGRPO_ASSIGN_OR_RETURN(const int n_steps,
                         TrainedStepCount(config_.steps, config_.timestep_fraction, config_.sde.window));
  const auto update_start = Clock::now();
  DGRPO_ASSIGN_OR_RETURN(auto local, UpdatePolicy(*policy_, reference_.get(), *optimizer_, uc, traj, advantages,
                                                  train_samples, 1.0 / (static_cast<double>(ga_global) * n_steps)));
  m.update_seconds = SecondsSince(update_start);
  if (phase_hook_) phase_hook_("update");

  // Global update statistics: pair-weighted means over the replicas.
  const double pairs = static_cast<double>(local.trained_pairs);
  auto agg = torch::tensor({pairs, local.loss, local.mean_ratio * pairs, local.clip_fraction * pairs,
                            local.approx_kl * pairs, local.kl_to_reference * pairs},
                           torch::kFloat64);
  DGRPO_RETURN_IF_ERROR(grid_.dp->AllReduce(agg, hpc::ReduceOp::kSum));
  auto extremes = torch::tensor({-local.ratio_min, local.ratio_max}, torch::kFloat64);
  DGRPO_RETURN_IF_ERROR(grid_.dp->AllReduce(extremes, hpc::ReduceOp::kMax));
  m.update = local;
  const double all_pairs = agg[0].item<double>();
  m.update.trained_pairs = static_cast<int64_t>(all_pairs);
  m.update.loss = agg[1].item<double>();
  if (all_pairs > 0) {
    m.update.mean_ratio = agg[2].item<double>() / all_pairs;
    m.update.clip_fraction = agg[3].item<double>() / all_pairs;
    m.update.approx_kl = agg[4].item<double>() / all_pairs;
    m.update.kl_to_reference = agg[5].item<double>() / all_pairs;
  }
  m.update.ratio_min = -extremes[0].item<double>();
  m.update.ratio_max = extremes[1].item<double>();
  return absl::OkStatus();
}

absl::StatusOr<IterationMetrics> Trainer::ReplayStep(const TrajectoryRecord& record) {
  const auto start = Clock::now();
  if (record.world_size != grid_.topology.world_size || record.rank != grid_.topology.world_rank ||
      record.first_global_sample != layout_.first_sample ||
      record.latents.size(0) != layout_.samples_per_rank) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored iteration ", record.iteration, " was sampled by rank ", record.rank, " of ", record.world_size,
        " with ", record.latents.size(0), " samples; replay it with the same world size and batch layout"));
  }
  IterationMetrics m;
  m.iteration = iteration_;
  m.samples = layout_.global_samples;
  DGRPO_ASSIGN_OR_RETURN(const auto conditions, EncodeSamples(record.prompt_slot, record.prompt_texts));
  last_trajectories_ = RecordToTrajectories(record, conditions, null_condition_);
  std::vector<double> advantages(record.advantages.data_ptr<double>(),
                                 record.advantages.data_ptr<double>() + record.advantages.numel());
  for (size_t k = 0; k < record.reward_names.size(); ++k) {
    auto row = record.rewards[k];
    m.reward_names.push_back(record.reward_names[k]);
    m.reward_mean.push_back(row.mean().item<double>());
    m.reward_std.push_back(row.numel() > 1 ? row.std().item<double>() : 0.0);
  }
  DGRPO_RETURN_IF_ERROR(Update(last_trajectories_, advantages, record.trained, m));
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
