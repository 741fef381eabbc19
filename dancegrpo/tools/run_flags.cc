#include "dancegrpo/tools/run_flags.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "dancegrpo/tools/model_flags.h"
#include "hpc/memory.h"
#include "hpc/status_macros.h"
#include "models/model_family.h"
#include "models/vae/wan_vae.h"

namespace {
// The defaults of every flag below: default-constructed structs, so each is written once.
const dancegrpo::TrainerConfig& D() {
  static const auto* d = new dancegrpo::TrainerConfig();
  return *d;
}
const dancegrpo::models::LoraConfig& L() {
  static const auto* l = new dancegrpo::models::LoraConfig();
  return *l;
}
}  // namespace

// The sampler.
DEFINE_uint64(seed, D().seed, "random seed: initial noise, timesteps, prompt order, random weights, LoRA's A");
DEFINE_int32(steps, D().steps, "sampling steps (T)");
DEFINE_double(shift, D().shift, "time shift of the sigma schedule");
DEFINE_string(sde, dancegrpo::SdeKindName(D().sde.kind), "dancegrpo | flowgrpo");
DEFINE_double(eta, D().sde.eta, "DanceGRPO SDE noise scale");
DEFINE_double(noise_level, D().sde.noise_level, "Flow-GRPO SDE noise level a (with --sde=flowgrpo)");
DEFINE_int32(sde_window_begin, D().sde.window.begin, "first SDE step of the window (with --sde_window_size)");
DEFINE_int32(sde_window_size, D().sde.window.size,
             "SDE steps in the window (MixGRPO): only they are stochastic and trained, the rest take the ODE; "
             "0 = every step");
DEFINE_bool(sde_window_random, D().sde.window.random,
            "draw the window's first step anew each iteration (keyed by seed and iteration) instead of "
            "--sde_window_begin");
DEFINE_bool(shared_noise, D().shared_noise,
            "the G samples of a prompt start from the same initial noise (DanceGRPO); false: each its own");
// The algorithm.
DEFINE_int64(iterations, D().iterations, "GRPO iterations");
DEFINE_int32(prompts_per_iteration, D().prompts_per_iteration, "prompts per iteration (global)");
DEFINE_int32(group_size, D().group_size, "samples per prompt (G)");
DEFINE_double(timestep_fraction, D().timestep_fraction, "fraction of the trainable steps trained per sample");
DEFINE_double(clip_range, D().clip_range, "ratio clip range");
DEFINE_bool(pooled_std, D().pooled_std,
            "advantages: group means, but one within-group std pooled over the iteration (groups whose samples "
            "barely differ get small advantages instead of unit-scale noise)");
DEFINE_int32(best_of_n, D().best_of_n, "best-of-n selection: train the top and bottom n/2 of each group; 0 = off");
DEFINE_double(kl_beta, D().kl_beta, "KL penalty to the initial policy; 0 = off");
DEFINE_double(cfg_scale, D().cfg_scale,
              "classifier-free guidance in rollout and training; 1 = off (needs the empty prompt's embedding)");
// The optimizer.
DEFINE_double(lr, D().optimizer.lr, "AdamW learning rate (finite, > 0)");
DEFINE_string(lr_schedule, D().lr_schedule,
              "constant (--lr throughout) or cosine (--lr at the first iteration, down a half cosine to --lr x "
              "--lr_final_fraction at the last)");
DEFINE_double(lr_final_fraction, D().lr_final_fraction, "with --lr_schedule=cosine: the last iteration's share of --lr");
DEFINE_double(max_grad_norm, D().optimizer.max_grad_norm, "gradient-norm clipping; 0 = off");
DEFINE_bool(ema, D().optimizer.ema, "train: keep an EMA of the weights; evaluate: score the checkpoint's EMA weights");
DEFINE_double(ema_decay, D().optimizer.ema_decay,
              "with --ema: the EMA's decay per optimizer step, in [0, 1] (1 / (1 - decay) steps is its memory)");
DEFINE_int32(grad_accum_samples, D().grad_accum_samples,
             "samples per optimizer step over all ranks; 0 = one step per iteration");
DEFINE_string(reduce_dtype, dancegrpo::PrecisionName(D().optimizer.reduce_dtype),
              "fp32 | bf16: the dtype gradients are reduce-scattered in");
// Layout and what trains.
DEFINE_int32(micro_batch, D().micro_batch, "samples per policy evaluation; 0 = all of a rank's samples at once");
DEFINE_int32(sp, D().sequence_parallel,
             "sequence-parallel ranks per sample; must divide the ranks and the video tokens (any head count: "
             "see --ulysses)");
DEFINE_int32(ulysses, D().ulysses,
             "with --sp: the Ulysses degree, ranks of consecutive sequence blocks that split the heads by all-to-all; "
             "ring attention runs across the sp / ulysses stages. Must divide sp and the heads; 0 = the largest that "
             "does (e.g. 4 for 12 heads at sp 8: Ulysses 4 x ring 2)");
DEFINE_int32(zero_stage, D().zero_stage,
             "2: the optimizer state is sharded; 3: the DiT blocks' parameters too, gathered one block at a time "
             "(turns activation checkpointing on)");
DEFINE_string(trainable, D().trainable,
              "the parameters to train, e.g. blocks.24-29,head (name prefixes; A-B ranges of block numbers); "
              "empty = all. Frozen ones get no gradient and no optimizer state");
DEFINE_int32(lora_rank, static_cast<int32_t>(L().rank),
             "LoRA: train rank-r adapters on --lora_targets instead of the whole model (the base stays frozen in the "
             "compute dtype); 0 = full fine-tuning. Flow-GRPO uses 32 for Wan2.1");
DEFINE_double(lora_alpha, L().alpha,
              "LoRA scale numerator (the scale is alpha / rank); 0 = 2 x rank (Flow-GRPO: r 32, alpha 64)");
DEFINE_string(lora_targets, L().targets,
              "the linear layers that get adapters: comma-separated names, each matching layers whose name equals it "
              "or ends with '.' + it (e.g. q matches every self_attn.q and cross_attn.q)");
DEFINE_double(lora_dropout, L().dropout, "LoRA dropout; only 0 (dropout would break the on-policy ratio of 1)");
// Memory.
DEFINE_double(memory_gb, 0,
              "memory per rank (GB) the run must fit, checked up front by train and plan; 0 = this machine's "
              "memory over --ranks_per_node on the CPU, no check on a GPU");
DEFINE_int32(ranks_per_node, 0, "ranks sharing one node's memory (for the memory check); 0 = all of them");
DEFINE_string(blas_kernels, "auto",
              "auto: OpenBLAS's best kernels for this CPU (e.g. AVX-512 where OpenBLAS fell back to its generic ones), "
              "kept only after a GEMM self-check (fp32, bf16) and otherwise refused with a notice; openblas: OpenBLAS's "
              "own choice (also checked). OPENBLAS_CORETYPE, when set, is kept");
DEFINE_bool(print_config, false, "print the run's settings as key=value lines and exit (train, plan and evaluate)");

namespace dancegrpo::tools {
namespace {

absl::Status InFlag(const char* flag, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("--", flag, ": ", s.message()));
}

absl::StatusOr<models::LoraConfig> LoraConfigFromFlags() {
  models::LoraConfig c;
  if (FLAGS_lora_rank < 0)
    return absl::InvalidArgumentError(absl::StrCat("--lora_rank=", FLAGS_lora_rank,
                                                   " is negative; use 0 (full fine-tuning) or a rank such as 32"));
  if (FLAGS_lora_rank == 0) {
    const auto given = ExplicitFlags({"lora_alpha", "lora_targets", "lora_dropout"});
    if (!given.empty())
      return absl::InvalidArgumentError(absl::StrCat("--", *given.begin(), " is given but --lora_rank is 0 (full "
                                                     "fine-tuning); set --lora_rank (e.g. 32) to train LoRA adapters"));
    return c;
  }
  c.rank = FLAGS_lora_rank;
  c.alpha = FLAGS_lora_alpha == 0 ? 2.0 * FLAGS_lora_rank : FLAGS_lora_alpha;
  c.targets = FLAGS_lora_targets;
  c.dropout = FLAGS_lora_dropout;
  return c;
}

}  // namespace

std::set<std::string> ExplicitFlags(const std::vector<std::string>& names) {
  std::set<std::string> given;
  for (const auto& name : names) {
    gflags::CommandLineFlagInfo info;
    if (gflags::GetCommandLineFlagInfo(name.c_str(), &info) && !info.is_default) given.insert(name);
  }
  return given;
}

absl::StatusOr<RunConfig> RunConfigFromFlags() {
  RunConfig run;
  TrainerConfig& c = run.trainer;
  c.seed = FLAGS_seed;
  c.iterations = FLAGS_iterations;
  c.prompts_per_iteration = FLAGS_prompts_per_iteration;
  c.group_size = FLAGS_group_size;
  c.steps = FLAGS_steps;
  c.shift = FLAGS_shift;
  auto kind = ParseSdeKind(FLAGS_sde);
  if (!kind.ok()) return InFlag("sde", kind.status());
  c.sde.kind = *kind;
  c.sde.eta = FLAGS_eta;
  c.sde.noise_level = FLAGS_noise_level;
  c.sde.window = {FLAGS_sde_window_begin, FLAGS_sde_window_size, FLAGS_sde_window_random};
  c.shared_noise = FLAGS_shared_noise;
  c.micro_batch = FLAGS_micro_batch;
  c.grad_accum_samples = FLAGS_grad_accum_samples;
  c.timestep_fraction = FLAGS_timestep_fraction;
  c.clip_range = FLAGS_clip_range;
  c.pooled_std = FLAGS_pooled_std;
  c.best_of_n = FLAGS_best_of_n;
  c.sequence_parallel = FLAGS_sp;
  c.ulysses = FLAGS_ulysses;
  c.cfg_scale = FLAGS_cfg_scale;
  c.kl_beta = FLAGS_kl_beta;
  c.lr_schedule = FLAGS_lr_schedule;
  c.lr_final_fraction = FLAGS_lr_final_fraction;
  c.optimizer.lr = FLAGS_lr;
  c.optimizer.max_grad_norm = FLAGS_max_grad_norm;
  c.optimizer.ema = FLAGS_ema;
  c.optimizer.ema_decay = FLAGS_ema_decay;
  auto reduce = ParsePrecision(FLAGS_reduce_dtype);
  if (!reduce.ok()) return InFlag("reduce_dtype", reduce.status());
  c.optimizer.reduce_dtype = *reduce;
  auto precision = ParsePrecision(FLAGS_precision);
  if (!precision.ok()) return InFlag("precision", precision.status());
  c.compute_dtype = *precision;
  if (FLAGS_device != "cpu" && FLAGS_device != "cuda")
    return absl::InvalidArgumentError(absl::StrCat("--device=", FLAGS_device, " is unknown; use cpu or cuda"));
  c.device = FLAGS_device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  c.trainable = FLAGS_trainable;
  c.zero_stage = FLAGS_zero_stage;
  DGRPO_ASSIGN_OR_RETURN(c.lora, LoraConfigFromFlags());
  DGRPO_RETURN_IF_ERROR(ValidateTrainerConfig(c));

  run.model = ModelOptionsFromFlags(c.seed, c.device);
  run.model.compute_dtype = c.compute_dtype;
  run.model.lora = c.lora;
  if (!std::isfinite(FLAGS_memory_gb) || FLAGS_memory_gb < 0)
    return absl::InvalidArgumentError(absl::StrCat("--memory_gb=", FLAGS_memory_gb,
                                                   "; give the memory of one rank in GB (e.g. 80), or 0 for automatic"));
  if (FLAGS_ranks_per_node < 0)
    return absl::InvalidArgumentError(absl::StrCat("--ranks_per_node=", FLAGS_ranks_per_node, " is negative"));
  run.memory_gb = FLAGS_memory_gb;
  run.ranks_per_node = FLAGS_ranks_per_node;
  return run;
}

absl::StatusOr<std::vector<int64_t>> LatentShapeFromFlags(int64_t in_channels) {
  return ResolveLatentShape(FLAGS_latent_shape, FLAGS_video_size, FLAGS_vae_stride, in_channels);
}

absl::StatusOr<PlanInput> PlanInputFor(const RunConfig& run, int world) {
  PlanInput in;
  auto family = models::ModelFamilyFor(run.model.model);
  if (!family.ok()) return InFlag("model", family.status());
  in.model = *family;
  in.run = run.trainer;
  DGRPO_ASSIGN_OR_RETURN(in.run.latent_shape, LatentShapeFromFlags(in.model->LatentChannels()));
  in.world = world;
  in.checkpointing = run.model.activation_checkpointing;
  in.ranks_per_node = run.ranks_per_node > 0 ? run.ranks_per_node : world;
  // The native Wan VAE: its decode, planned from its config (plan cannot see into a TorchScript one).
  auto wan = models::vae::ParseWanVaeSpec(run.model.decoder);
  if (!wan.ok()) return InFlag("decoder", wan.status());
  if (wan->has_value()) {
    auto vae = models::vae::ReadWanVaeConfig((*wan)->path);
    if (!vae.ok()) return InFlag("decoder", vae.status());
    auto o = (*wan)->options;
    o.device = in.run.device;
    o.dtype = in.run.compute_dtype == torch::kBFloat16 ? torch::kBFloat16 : torch::kFloat;
    const auto& l = in.run.latent_shape;
    const auto one = models::vae::PlanWanVaeDecode(*vae, o, 1, l[1], l[2], l[3]);
    const auto two = models::vae::PlanWanVaeDecode(*vae, o, 2, l[1], l[2], l[3]);
    in.decode_fixed_bytes = 2 * one.peak() - two.peak();  // the weights: what does not grow with the batch
    in.decode_per_sample_bytes = two.peak() - one.peak();
    in.decode_clip_bytes = 4 * 3 * vae->VideoFrames(l[1]) * l[2] * vae->spatial_stride() * l[3] * vae->spatial_stride();
    if (!o.tiling) {
      auto tiled = o;
      tiled.tiling = true;
      const auto t1 = models::vae::PlanWanVaeDecode(*vae, tiled, 1, l[1], l[2], l[3]);
      const auto t2 = models::vae::PlanWanVaeDecode(*vae, tiled, 2, l[1], l[2], l[3]);
      in.decode_tiled_per_sample_bytes = t2.peak() - t1.peak();
      in.decode_tiling_flag = absl::StrCat("--decoder=", run.model.decoder, ",tile=256,stride=192");
    }
  }
  if (run.memory_gb > 0) {
    in.device_bytes = run.memory_gb * 1e9;
  } else if (!in.run.device.is_cuda()) {
    in.host_bytes = static_cast<double>(hpc::MachineMemoryBytes());
    in.device_bytes = in.host_bytes / std::min(in.ranks_per_node, world);
  }
  return in;
}

std::string DescribeRunConfig(const RunConfig& run) {
  std::string out = DescribeConfig(run.trainer);
  auto add = [&](const char* key, const auto& value) { absl::StrAppend(&out, key, "=", value, "\n"); };
  add("device", run.trainer.device.is_cuda() ? "cuda" : "cpu");
  add("model", run.model.model);
  add("weights", run.model.weights);
  add("weights_prefix", run.model.weights_prefix);
  add("embeddings", run.model.embeddings);
  add("decoder", run.model.decoder);
  add("rewards", run.model.rewards);
  add("activation_checkpointing", run.model.activation_checkpointing);
  add("memory_gb", run.memory_gb);
  add("ranks_per_node", run.ranks_per_node);
  return out;
}

absl::StatusOr<hpc::BlasChoice> ChooseBlasFromFlags() {
  if (FLAGS_blas_kernels != "auto" && FLAGS_blas_kernels != "openblas")
    return absl::InvalidArgumentError(
        absl::StrCat("--blas_kernels=", FLAGS_blas_kernels, " is unknown; use auto or openblas"));
  hpc::BlasOptions o;
  o.auto_select = FLAGS_blas_kernels == "auto";
  return hpc::ChooseBlasKernels(o);
}

}  // namespace dancegrpo::tools
