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
#include "dancegrpo/scored_rollout.h"
#include "hpc/comm/agree.h"
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
  std::unique_ptr<Trainer> t(new Trainer());
  t->config_ = config;
  t->encoder_ = std::move(encoder);
  t->decoder_ = std::move(decoder);
  t->rewards_ = std::move(rewards);
  t->prompts_ = std::move(prompts);
  DGRPO_ASSIGN_OR_RETURN(t->sigmas_, SigmaSchedule(config.steps, config.shift));
  DGRPO_RETURN_IF_ERROR(t->PlaceRanks(std::move(world), std::move(data_world)));
  DGRPO_RETURN_IF_ERROR(t->PlacePolicy(std::move(policy)));
  DGRPO_RETURN_IF_ERROR(t->MakeReference(std::move(reference)));
  if (config.cfg_scale != 1.0) {
    torch::NoGradGuard no_grad;
    DGRPO_ASSIGN_OR_RETURN(t->null_condition_, t->encoder_->Encode({""}));
  }
  return t;
}

absl::Status Trainer::PlaceRanks(std::shared_ptr<hpc::Communicator> world,
                                 std::shared_ptr<hpc::Communicator> data_world) {
  // The process grid (data x sequence parallel), the samples of this rank, and the ranks
  // that exchange rewards.
  const auto& config = config_;
  if (!world) world = std::make_shared<hpc::LocalCommunicator>();
  if (data_world && data_world->size() != world->size())
    return absl::InvalidArgumentError("the data-plane communicator must span the same ranks as the world");
  DGRPO_ASSIGN_OR_RETURN(grid_, hpc::ProcessGrid::Create(world, config.sequence_parallel));
  data_grid_ = grid_;
  if (data_world) {
    DGRPO_ASSIGN_OR_RETURN(data_grid_, hpc::ProcessGrid::Create(data_world, config.sequence_parallel));
  }
  DGRPO_ASSIGN_OR_RETURN(layout_,
                         hpc::SampleLayout::Make(config.prompts_per_iteration, config.group_size, grid_.topology));
  const int64_t trained = TrainedSamplesPerIteration();
  if (config.grad_accum_samples > 0 && trained % config.grad_accum_samples != 0) {
    return absl::InvalidArgumentError(absl::StrCat("grad_accum_samples = ", config.grad_accum_samples,
                                                   " does not divide the ", trained,
                                                   " samples trained per iteration; choose a divisor"));
  }
  // UpdatePolicy's own condition for several optimizer steps an iteration, checked here so a
  // misfit stops the job before its first rollout and checkpoint.
  const int64_t steps = config.grad_accum_samples > 0 ? trained / config.grad_accum_samples : 1;
  const int64_t n_local = layout_.samples_per_rank;
  if (steps > 1 && (config.micro_batch < 1 || n_local % (config.micro_batch * steps) != 0 ||
                    layout_.first_sample % config.micro_batch != 0)) {
    int64_t fits = 0;  // the largest micro_batch that would fit
    for (int64_t m = 1; m <= n_local / steps; ++m)
      if (n_local % (m * steps) == 0 && layout_.first_sample % m == 0) fits = m;
    return absl::InvalidArgumentError(absl::StrCat(
        "grad_accum_samples = ", config.grad_accum_samples, " makes ", steps,
        " optimizer steps an iteration, which need the ", n_local,
        " samples of each data-parallel rank to be a multiple of micro_batch (", config.micro_batch,
        ") x steps (", steps, "); set --micro_batch=", fits, " or a larger grad_accum_samples"));
  }
  if (config.global_normalization || config.pooled_std) {
    DGRPO_ASSIGN_OR_RETURN(group_comm_, grid_.dp->Split(0, grid_.topology.dp_rank));
  } else {
    DGRPO_ASSIGN_OR_RETURN(group_comm_, grid_.GroupCommunicator(layout_));
  }
  return absl::OkStatus();
}

absl::Status Trainer::PlacePolicy(std::shared_ptr<models::VelocityModel> policy) {
  // The trained parameters, ZeRO-3's shards, the compute copy (dtype, device), sequence
  // parallelism and the optimizer with its fp32 masters.
  const auto& config = config_;
  policy_ = std::move(policy);
  if (models::HasLora(*policy_) != config.lora.enabled())
    return absl::InvalidArgumentError(config.lora.enabled()
                                          ? "config.lora is set but the policy has no LoRA adapters (AttachLora)"
                                          : "the policy has LoRA adapters: describe them in config.lora");
  // Mixed precision and devices: the fp32 values are kept (on the CPU) to seed the
  // optimizer's fp32 masters, then the policy becomes its compute copy.
  std::vector<std::string> names;
  for (const auto& p : policy_->named_parameters()) names.push_back(p.key());
  DGRPO_ASSIGN_OR_RETURN(const auto selected, SelectTrainable(names, config.trainable));
  // ZeRO-3: the blocks keep only this rank's slices: as loaded (LoadInLayout, trainable.h),
  // or sharded here in the same layout when the policy arrives whole.
  auto* runner = policy_->block_runner();
  sharded_ = runner ? runner->shards() : nullptr;
  if (config.zero_stage == 3 && !sharded_) {
    DGRPO_ASSIGN_OR_RETURN(sharded_, ShardPolicy(*policy_, config.trainable, data_grid_.world, config.compute_dtype,
                                                 config.device));
  } else if (config.zero_stage != 3 && sharded_) {
    return absl::InvalidArgumentError(absl::StrCat("the policy was loaded sharded (ZeRO-3) but the run has zero_stage ",
                                                   config.zero_stage, "; load it whole or use --zero_stage=3"));
  }
  std::vector<torch::Tensor> fp32_values;
  if (compute_copy()) {
    torch::NoGradGuard no_grad;
    const auto params = policy_->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      if (selected[i]) fp32_values.push_back(params[i].detach().to(torch::kFloat32).clone());
    policy_->to(config.device, config.compute_dtype);
  }
  const auto named = policy_->named_parameters();  // after the move: the live tensors
  for (size_t i = 0; i < named.size(); ++i) {
    if (selected[i]) {
      trained_.insert(named[i].key(), named[i].value());
    } else {
      named[i].value().set_requires_grad(false);  // frozen: no gradient, no optimizer state
    }
  }
  if (config.sequence_parallel > 1) {
    DGRPO_ASSIGN_OR_RETURN(ulysses_, policy_->SetSequenceParallel(data_grid_.sp, config.ulysses));
  }
  DGRPO_ASSIGN_OR_RETURN(optimizer_,
                         hpc::ShardedAdamW::Create(trained_.values(), data_grid_.world, config.optimizer, sharded_));
  if (compute_copy()) optimizer_->LoadFlat(optimizer_->Flatten(fp32_values));
  return absl::OkStatus();
}

absl::Status Trainer::MakeReference(std::shared_ptr<models::VelocityModel> reference) {
  // The frozen reference of the KL term: the policy with its adapters off (LoRA), or a copy
  // of the policy's initial weights.
  const auto& config = config_;
  if (config.kl_beta <= 0) return absl::OkStatus();
  if (config.lora.enabled()) {
    reference_ = std::make_shared<LoraBase>(policy_);
    return absl::OkStatus();
  }
  if (!reference) return absl::InvalidArgumentError("kl_beta > 0 needs a reference policy instance");
  if (compute_copy()) reference->to(config.device, config.compute_dtype);
  auto src = policy_->named_parameters();
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
  if (config.sequence_parallel > 1) DGRPO_RETURN_IF_ERROR(reference->SetSequenceParallel(data_grid_.sp, ulysses_).status());
  reference_ = std::move(reference);
  return absl::OkStatus();
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
  IterationRecord r;
  // A rank whose prompts, decoder or rewards fail stops every rank here, before anything of the
  // iteration reaches the model, a checkpoint or a shard (the others would otherwise wait for it
  // in the reward gather).
  DGRPO_RETURN_IF_ERROR(hpc::AgreeOnStatus(Sample(r), grid_.world.get()));
  hpc::FaultPoint("rollout", iteration_);
  if (phase_hook_) phase_hook_("rollout");
  DGRPO_RETURN_IF_ERROR(Advantages(r));
  DGRPO_RETURN_IF_ERROR(RewardStatistics(r));
  DGRPO_RETURN_IF_ERROR(Update(r));
  return Finish(r, start);
}

absl::Status Trainer::Sample(IterationRecord& r) {
  // 1-3. This replica's samples of the global batch: their prompts, rollout, clips, scores.
  const int g = config_.group_size;
  r.rank = grid_.topology.world_rank;
  r.world_size = grid_.topology.world_size;
  r.first_global_sample = layout_.first_sample;
  const auto prompt_ids = PromptsFor(iteration_);
  std::vector<SampleId> samples;
  std::vector<rewards::Prompt> sample_prompts;
  std::vector<int64_t> slots;
  for (int64_t i = layout_.first_sample; i < layout_.first_sample + layout_.samples_per_rank; ++i) {
    samples.push_back({i / g, i % g});
    slots.push_back(i / g);
    sample_prompts.push_back(prompts_[prompt_ids[i / g]]);
    r.prompt_ids.push_back(prompt_ids[i / g]);
    r.prompt_texts.push_back(sample_prompts.back().text);
  }
  DGRPO_ASSIGN_OR_RETURN(const auto conditions, EncodeSamples(slots, r.prompt_texts));
  RolloutConfig rc;
  rc.seed = config_.seed;
  rc.shared_noise = config_.shared_noise;
  rc.micro_batch = config_.micro_batch;
  rc.cfg_scale = config_.cfg_scale;
  rc.sde = config_.sde;
  rc.latent_shape = config_.latent_shape;
  DGRPO_ASSIGN_OR_RETURN(auto scored, RolloutAndScore(*policy_, rc, sigmas_, iteration_, samples, conditions,
                                                      null_condition_, decoder_.get(), rewards_, sample_prompts));
  r.trajectories = std::move(scored.trajectories);
  r.clips = std::move(scored.clips);
  r.scores = std::move(scored.scores);
  for (const auto& w : rewards_) r.reward_names.push_back(w.reward->name());
  r.metrics.rollout_seconds = scored.rollout_seconds;
  r.metrics.reward_seconds = scored.score_seconds;
  return absl::OkStatus();
}

absl::Status Trainer::Advantages(IterationRecord& r) {
  // 4. Advantages over the span of samples this rank can see after the gather: its
  // sampling group(s), or every sample for global normalisation or a pooled std.
  const int g = config_.group_size;
  std::vector<std::vector<double>> span_scores = r.scores;
  int64_t span_begin = layout_.first_sample;
  if (group_comm_->size() > 1) {
    DGRPO_ASSIGN_OR_RETURN(span_scores, GatherScores(r.scores, *group_comm_));
    span_begin -= group_comm_->rank() * layout_.samples_per_rank;
  }
  AdvantageConfig ac;
  ac.group_size = g;
  ac.adv_clip_max = config_.adv_clip_max;
  ac.global_normalization = config_.global_normalization;
  ac.pooled_std = config_.pooled_std;
  for (const auto& w : rewards_) ac.weights.push_back(w.weight);
  DGRPO_ASSIGN_OR_RETURN(auto span_adv, ComputeAdvantages(span_scores, ac));
  const int64_t offset = layout_.first_sample - span_begin, n_local = layout_.samples_per_rank;
  r.advantages.assign(span_adv.begin() + offset, span_adv.begin() + offset + n_local);
  r.trained.clear();
  if (config_.best_of_n > 0) {
    DGRPO_ASSIGN_OR_RETURN(auto kept, BestOfN(span_adv, g, config_.best_of_n));
    for (int64_t k : kept)
      if (k >= offset && k < offset + n_local) r.trained.push_back(k - offset);
  } else {
    r.trained.resize(n_local);
    std::iota(r.trained.begin(), r.trained.end(), 0);
  }
  return absl::OkStatus();
}

absl::Status Trainer::RewardStatistics(IterationRecord& r) {
  // Global reward statistics over the replicas: sums, sums of squares.
  auto& m = r.metrics;
  const int64_t k_rewards = static_cast<int64_t>(r.scores.size());
  auto moments = torch::zeros({2 * k_rewards}, torch::kFloat64);
  for (int64_t k = 0; k < k_rewards; ++k)
    for (double v : r.scores[k]) {
      moments[k] += v;
      moments[k_rewards + k] += v * v;
    }
  DGRPO_RETURN_IF_ERROR(grid_.dp->AllReduce(moments, hpc::ReduceOp::kSum));
  const double total = static_cast<double>(layout_.global_samples);
  m.reward_names = r.reward_names;
  for (int64_t k = 0; k < k_rewards; ++k) {
    const double sum = moments[k].item<double>(), sumsq = moments[k_rewards + k].item<double>();
    m.reward_mean.push_back(sum / total);
    m.reward_std.push_back(total > 1 ? std::sqrt(std::max(0.0, (sumsq - sum * sum / total) / (total - 1))) : 0.0);
  }
  return absl::OkStatus();
}

absl::Status Trainer::Update(IterationRecord& r) {
  // 5. The clipped update. GA counts samples over all replicas; the objective is scaled by it.
  auto& m = r.metrics;
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
  m.lr = ScheduledLr(config_, iteration_);
  optimizer_->set_lr(m.lr);
  const auto update_start = Clock::now();
  DGRPO_ASSIGN_OR_RETURN(auto local,
                         UpdatePolicy(*policy_, reference_.get(), *optimizer_, uc, r.trajectories, r.advantages,
                                      r.trained, 1.0 / (static_cast<double>(ga_global) * n_steps)));
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

absl::StatusOr<IterationMetrics> Trainer::Finish(IterationRecord& r, Clock::time_point start) {
  // 6. The observers (trajectory shards, metrics, pictures), then the next iteration.
  auto& m = r.metrics;
  m.iteration = iteration_;
  m.samples = layout_.global_samples;
  m.seconds = SecondsSince(start);
  m.samples_per_second = m.samples / std::max(m.seconds, 1e-9);
  for (const auto& observer : observers_) DGRPO_RETURN_IF_ERROR(observer->OnIteration(r));
  last_trajectories_ = std::move(r.trajectories);
  ++iteration_;
  return m;
}

absl::StatusOr<IterationMetrics> Trainer::ReplayStep(const IterationRecord& stored) {
  const auto start = Clock::now();
  const int64_t n = stored.trajectories.num_samples();
  if (stored.world_size != grid_.topology.world_size || stored.rank != grid_.topology.world_rank ||
      stored.first_global_sample != layout_.first_sample || n != layout_.samples_per_rank) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored iteration ", stored.trajectories.iteration, " was sampled by rank ", stored.rank, " of ",
        stored.world_size, " with ", n, " samples; replay it with the same world size and batch layout"));
  }
  IterationRecord r = stored;
  r.replayed = true;
  r.metrics = IterationMetrics{};
  DGRPO_ASSIGN_OR_RETURN(r.trajectories.conditions, EncodeSamples(r.trajectories.prompt_slot, r.prompt_texts));
  r.trajectories.null_condition = null_condition_;
  // This rank's rewards: the stored samples' means (the global statistics are not stored).
  r.metrics.reward_names = r.reward_names;
  for (const auto& row : r.scores) {
    const auto t = torch::tensor(row, torch::kFloat64);
    r.metrics.reward_mean.push_back(t.mean().item<double>());
    r.metrics.reward_std.push_back(t.numel() > 1 ? t.std().item<double>() : 0.0);
  }
  DGRPO_RETURN_IF_ERROR(Update(r));
  return Finish(r, start);
}

absl::Status Trainer::Run(const std::function<void(const IterationMetrics&)>& on_iteration) {
  while (iteration_ < config_.iterations) {
    DGRPO_ASSIGN_OR_RETURN(auto m, Step());
    if (on_iteration) on_iteration(m);
  }
  return absl::OkStatus();
}

}  // namespace dancegrpo
