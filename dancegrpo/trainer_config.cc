#include "dancegrpo/trainer_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {

absl::Status Negative(const char* name, int64_t value) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, "=", value, " is negative; see --helpon=run_flags for its range"));
}

absl::Status BelowOne(const char* name, int64_t value) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, "; it must be >= 1"));
}

}  // namespace

absl::StatusOr<torch::ScalarType> ParsePrecision(const std::string& name) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  return absl::InvalidArgumentError(absl::StrCat("precision '", name, "' is unknown; use fp32 or bf16"));
}

std::string PrecisionName(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16 ? "bf16" : dtype == torch::kFloat32 ? "fp32" : c10::toString(dtype);
}

absl::Status ValidateTrainerConfig(const TrainerConfig& c) {
  struct Count {
    const char* name;
    int64_t value;
  };
  // Settings whose 0 means "all", "off" or "never" (their help says so): below zero is refused.
  for (const auto& f : {Count{"iterations", c.iterations}, {"micro_batch", c.micro_batch},
                        {"grad_accum_samples", c.grad_accum_samples}, {"best_of_n", c.best_of_n},
                        {"ulysses", c.ulysses},
                        {"sde_window_begin", c.sde.window.begin}, {"sde_window_size", c.sde.window.size}}) {
    if (f.value < 0) return Negative(f.name, f.value);
  }
  for (const auto& f : {Count{"prompts_per_iteration", c.prompts_per_iteration}, {"group_size", c.group_size},
                        {"steps", c.steps}, {"sp", c.sequence_parallel}}) {
    if (f.value < 1) return BelowOne(f.name, f.value);
  }
  if (c.ulysses > 0 && c.sequence_parallel % c.ulysses != 0)
    return absl::InvalidArgumentError(absl::StrCat("--ulysses=", c.ulysses, " does not divide --sp=", c.sequence_parallel,
                                                   "; use a divisor of sp (the ring degree is sp / ulysses), or 0 for "
                                                   "the largest that divides sp and the heads"));
  if (c.group_size < 2 && !c.global_normalization)
    return absl::InvalidArgumentError(
        "group_size = 1 cannot be normalised per group; use group_size >= 2 or global normalisation");
  if (!c.latent_shape.empty() && c.latent_shape.size() != 4)
    return absl::InvalidArgumentError("latent_shape must be [C, F, H, W]");
  if (c.best_of_n != 0 && (c.best_of_n < 2 || c.best_of_n % 2 || c.best_of_n > c.group_size))
    return absl::InvalidArgumentError(absl::StrCat("best_of_n = ", c.best_of_n,
                                                   "; use 0 (off) or an even n with 2 <= n <= group_size"));
  if (!(c.kl_beta >= 0)) return absl::InvalidArgumentError(absl::StrCat("--kl_beta=", c.kl_beta, "; it must be >= 0"));
  if (!std::isfinite(c.cfg_scale) || c.cfg_scale < 1)
    return absl::InvalidArgumentError(absl::StrCat("--cfg_scale=", c.cfg_scale, "; use 1 (off) or more (Wan uses 5)"));
  if (c.zero_stage != 2 && c.zero_stage != 3)
    return absl::InvalidArgumentError(absl::StrCat("--zero_stage=", c.zero_stage, ": use 2 or 3 (2: the optimizer "
                                                   "state is sharded; 3: the parameters too)"));
  if (c.zero_stage == 3 && c.kl_beta > 0 && !c.lora.enabled())
    return absl::UnimplementedError("kl_beta > 0 keeps a whole reference model on every rank, which ZeRO-3 does not "
                                    "shard yet; use --zero_stage=2, kl_beta = 0, or LoRA (--lora_rank: its reference "
                                    "is the base, free)");
  // A zero noise scale makes the SDE deterministic: every log-prob would divide by std = 0.
  if (c.sde.kind == SdeKind::kDanceGrpo && !(c.sde.eta > 0))
    return absl::InvalidArgumentError(absl::StrCat("eta = ", c.sde.eta, "; the DanceGRPO SDE needs eta > 0 (e.g. 0.3)"));
  if (c.sde.kind == SdeKind::kFlowGrpo && !(c.sde.noise_level > 0))
    return absl::InvalidArgumentError(
        absl::StrCat("noise_level = ", c.sde.noise_level, "; the Flow-GRPO SDE needs noise_level > 0 (e.g. 0.7)"));
  if (!(c.shift > 0)) return absl::InvalidArgumentError(absl::StrCat("shift = ", c.shift, "; it must be > 0"));
  if (!(c.clip_range > 0))
    return absl::InvalidArgumentError(absl::StrCat("clip_range = ", c.clip_range, "; it must be > 0 (e.g. 1e-4)"));
  DGRPO_RETURN_IF_ERROR(hpc::ValidateAdamWConfig(c.optimizer));
  if (c.lr_schedule != "constant" && c.lr_schedule != "cosine")
    return absl::InvalidArgumentError(
        absl::StrCat("--lr_schedule=", c.lr_schedule, ": use constant or cosine (to --lr x --lr_final_fraction)"));
  if (c.lr_schedule == "cosine" && !(c.lr_final_fraction >= 0 && c.lr_final_fraction <= 1))
    return absl::InvalidArgumentError(absl::StrCat("--lr_final_fraction=", c.lr_final_fraction,
                                                   ": the cosine schedule ends at that fraction of --lr; use 0 to 1"));
  if (c.optimizer.max_grad_norm < 0)
    return absl::InvalidArgumentError(absl::StrCat("--max_grad_norm=", c.optimizer.max_grad_norm,
                                                   "; use a positive norm, or 0 for no clipping"));
  if (c.compute_dtype != torch::kFloat32 && c.compute_dtype != torch::kBFloat16)
    return absl::InvalidArgumentError("the compute precision is fp32 or bf16");
  return TrainedStepCount(c.steps, c.timestep_fraction, c.sde.window).status();
}

double ScheduledLr(const TrainerConfig& c, int64_t iteration) {
  const double lr = c.optimizer.lr;
  if (c.lr_schedule != "cosine" || c.iterations < 2) return lr;
  const double t = static_cast<double>(std::clamp<int64_t>(iteration, 0, c.iterations - 1)) / (c.iterations - 1);
  const double final_lr = lr * c.lr_final_fraction;
  return final_lr + 0.5 * (lr - final_lr) * (1.0 + std::cos(M_PI * t));
}

std::string DescribeConfig(const TrainerConfig& c) {
  std::string out;
  auto add = [&](const char* key, const auto& value) { absl::StrAppend(&out, key, "=", value, "\n"); };
  add("seed", c.seed);
  add("iterations", c.iterations);
  add("prompts_per_iteration", c.prompts_per_iteration);
  add("group_size", c.group_size);
  add("steps", c.steps);
  add("shift", c.shift);
  add("sde", SdeKindName(c.sde.kind));
  add("eta", c.sde.eta);
  add("noise_level", c.sde.noise_level);
  add("sde_window_begin", c.sde.window.begin);
  add("sde_window_size", c.sde.window.size);
  add("sde_window_random", c.sde.window.random);
  add("shared_noise", c.shared_noise);
  add("micro_batch", c.micro_batch);
  add("grad_accum_samples", c.grad_accum_samples);
  add("timestep_fraction", c.timestep_fraction);
  add("clip_range", c.clip_range);
  add("adv_clip_max", c.adv_clip_max);
  add("global_normalization", c.global_normalization);
  add("pooled_std", c.pooled_std);
  add("best_of_n", c.best_of_n);
  add("sequence_parallel", c.sequence_parallel);
  add("ulysses", c.ulysses);
  add("cfg_scale", c.cfg_scale);
  add("kl_beta", c.kl_beta);
  add("lr", c.optimizer.lr);
  if (c.lr_schedule != "constant") {  // (absent from older checkpoints: constant)
    add("lr_schedule", c.lr_schedule);
    add("lr_final_fraction", c.lr_final_fraction);
  }
  add("beta1", c.optimizer.beta1);
  add("beta2", c.optimizer.beta2);
  add("adam_eps", c.optimizer.eps);
  add("weight_decay", c.optimizer.weight_decay);
  add("max_grad_norm", c.optimizer.max_grad_norm);
  add("ema", c.optimizer.ema);
  add("ema_decay", c.optimizer.ema_decay);
  add("precision", PrecisionName(c.compute_dtype));
  add("trainable", c.trainable.empty() ? "all" : c.trainable);
  add("reduce_dtype", PrecisionName(c.optimizer.reduce_dtype));
  add("zero_stage", c.zero_stage);
  if (c.lora.enabled()) {
    add("lora_rank", c.lora.rank);
    add("lora_alpha", c.lora.alpha);
    add("lora_targets", c.lora.targets);
  }
  if (!c.base_weights.empty()) add("base_weights", c.base_weights);
  if (!c.base_checksum.empty()) add("base_checksum", c.base_checksum);
  std::string shape;
  for (size_t i = 0; i < c.latent_shape.size(); ++i) absl::StrAppend(&shape, i ? "x" : "", c.latent_shape[i]);
  add("latent_shape", shape);
  return out;
}

std::map<std::string, std::string> ParseDescribedConfig(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (!kv.first.empty()) out[kv.first] = kv.second;
  }
  return out;
}

const std::vector<std::string>& SamplerKeys() {
  static const auto* keys = new std::vector<std::string>{
      "steps", "shift", "sde", "eta", "noise_level", "sde_window_begin", "sde_window_size", "sde_window_random"};
  return *keys;
}

absl::Status ApplyDescribedSampler(const std::string& described, const std::set<std::string>& keep, TrainerConfig& c) {
  const auto saved = ParseDescribedConfig(described);
  // The window is one setting: any of its keys given keeps all three (a window of size 0
  // given explicitly must not become the recorded random window of size 0).
  const bool keep_window =
      keep.count("sde_window_begin") || keep.count("sde_window_size") || keep.count("sde_window_random");
  for (const auto& key : SamplerKeys()) {
    auto it = saved.find(key);
    if (keep.count(key) || it == saved.end()) continue;
    if (keep_window && key.rfind("sde_window_", 0) == 0) continue;
    const std::string& v = it->second;
    bool ok = true;
    if (key == "steps") {
      ok = absl::SimpleAtoi(v, &c.steps);
    } else if (key == "shift") {
      ok = absl::SimpleAtod(v, &c.shift);
    } else if (key == "sde") {
      auto kind = ParseSdeKind(v);
      ok = kind.ok();
      if (ok) c.sde.kind = *kind;
    } else if (key == "eta") {
      ok = absl::SimpleAtod(v, &c.sde.eta);
    } else if (key == "noise_level") {
      ok = absl::SimpleAtod(v, &c.sde.noise_level);
    } else if (key == "sde_window_begin") {
      ok = absl::SimpleAtoi(v, &c.sde.window.begin);
    } else if (key == "sde_window_size") {
      ok = absl::SimpleAtoi(v, &c.sde.window.size);
    } else if (key == "sde_window_random") {
      ok = absl::SimpleAtob(v, &c.sde.window.random);
    }
    if (!ok)
      return absl::DataLossError(absl::StrCat("the recorded sampler setting ", key, "=", v,
                                              " does not parse; give --", key, " explicitly"));
  }
  return absl::OkStatus();
}

std::string DescribeSampler(const TrainerConfig& c) {
  std::string out = c.sde.kind == SdeKind::kDanceGrpo ? absl::StrFormat("dancegrpo SDE (eta %g)", c.sde.eta)
                                                      : absl::StrFormat("flowgrpo SDE (noise level %g)", c.sde.noise_level);
  absl::StrAppendFormat(&out, ", %d steps, shift %g", c.steps, c.shift);
  const SdeWindow& w = c.sde.window;
  if (w.all()) {
    absl::StrAppend(&out, ", every step stochastic");
  } else if (w.random) {
    absl::StrAppendFormat(&out, ", SDE window %d steps drawn per iteration", w.size);
  } else {
    absl::StrAppendFormat(&out, ", SDE window steps %d-%d", w.begin, w.begin + w.size - 1);
  }
  return out;
}

}  // namespace dancegrpo
