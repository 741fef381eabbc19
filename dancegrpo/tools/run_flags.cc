#include "dancegrpo/tools/run_flags.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "dancegrpo/inputs.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/tools/model_flags.h"
#include "hpc/memory.h"
#include "models/dit/dit_config.h"

DEFINE_string(reduce_dtype, "fp32", "fp32 | bf16: the dtype gradients are reduce-scattered in");
DEFINE_int32(sp, 1, "sequence-parallel ranks per sample (Ulysses); must divide the ranks and the heads");
DEFINE_int32(prompts_per_iteration, 4, "prompts per iteration (global)");
DEFINE_int32(group_size, 8, "samples per prompt (G)");
DEFINE_int32(steps, 8, "sampling steps (T)");
DEFINE_int32(micro_batch, 4, "samples per policy evaluation; 0 = all of a rank's samples at once");
DEFINE_double(timestep_fraction, 0.6, "fraction of the trainable steps trained per sample");
DEFINE_double(cfg_scale, 1.0, "classifier-free guidance in rollout and training; 1 = off (needs the empty prompt's embedding)");
DEFINE_string(trainable, "",
              "the parameters to train, e.g. blocks.24-29,head (name prefixes; A-B ranges of block numbers); "
              "empty = all. Frozen ones get no gradient and no optimizer state");
DEFINE_bool(ema, false, "keep an EMA of the weights");
DEFINE_int32(zero_stage, 2,
             "2: the optimizer state is sharded; 3: the DiT blocks' parameters too, gathered one block at a time "
             "(turns activation checkpointing on)");
DEFINE_double(memory_gb, 0,
              "memory per rank (GB) the run must fit, checked up front by train and plan; 0 = this machine's "
              "memory over --ranks_per_node on the CPU, no check on a GPU");
DEFINE_int32(ranks_per_node, 0, "ranks sharing one node's memory (for the memory check); 0 = all of them");
DEFINE_int32(lora_rank, 0,
             "LoRA: train rank-r adapters on --lora_targets instead of the whole model (the base stays frozen in the "
             "compute dtype); 0 = full fine-tuning. Flow-GRPO uses 32 for Wan2.1");
DEFINE_double(lora_alpha, 0, "LoRA scale numerator (the scale is alpha / rank); 0 = 2 x rank (Flow-GRPO: r 32, alpha 64)");
DEFINE_string(lora_targets, dancegrpo::models::kDefaultLoraTargets,
              "the linear layers that get adapters: comma-separated names, each matching layers whose name equals it "
              "or ends with '.' + it (e.g. q matches every self_attn.q and cross_attn.q)");
DEFINE_double(lora_dropout, 0, "LoRA dropout; only 0 (dropout would break the on-policy ratio of 1)");

namespace dancegrpo::tools {

absl::StatusOr<models::LoraConfig> LoraConfigFromFlags() {
  models::LoraConfig c;
  if (FLAGS_lora_rank < 0)
    return absl::InvalidArgumentError(absl::StrCat("--lora_rank=", FLAGS_lora_rank,
                                                   " is negative; use 0 (full fine-tuning) or a rank such as 32"));
  if (FLAGS_lora_rank == 0) {
    for (const char* name : {"lora_alpha", "lora_targets", "lora_dropout"}) {
      if (!gflags::GetCommandLineFlagInfoOrDie(name).is_default)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " is given but --lora_rank is 0 (full fine-tuning); "
                                                       "set --lora_rank (e.g. 32) to train LoRA adapters"));
    }
    return c;
  }
  c.rank = FLAGS_lora_rank;
  c.alpha = FLAGS_lora_alpha == 0 ? 2.0 * FLAGS_lora_rank : FLAGS_lora_alpha;
  c.targets = FLAGS_lora_targets;
  c.dropout = FLAGS_lora_dropout;
  return c;
}

absl::StatusOr<PlanInput> PlanInputFromFlags(int world) {
  if (!std::isfinite(FLAGS_memory_gb) || FLAGS_memory_gb < 0)
    return absl::InvalidArgumentError(absl::StrCat("--memory_gb=", FLAGS_memory_gb,
                                                   "; give the memory of one rank in GB (e.g. 80), or 0 for automatic"));
  if (FLAGS_ranks_per_node < 0)
    return absl::InvalidArgumentError(absl::StrCat("--ranks_per_node=", FLAGS_ranks_per_node, " is negative"));
  PlanInput in;
  auto config = models::DitConfigFromPresetOrFile(FLAGS_model);
  if (!config.ok()) return absl::Status(config.status().code(), absl::StrCat("--model: ", config.status().message()));
  in.model = *config;
  auto shape = ResolveLatentShape(FLAGS_latent_shape, FLAGS_video_size, FLAGS_vae_stride, in.model.in_channels);
  if (!shape.ok()) return shape.status();
  in.latent_shape = *shape;
  auto dtype = ParsePrecision(FLAGS_precision);
  if (!dtype.ok()) return absl::Status(dtype.status().code(), absl::StrCat("--precision: ", dtype.status().message()));
  auto reduce = ParsePrecision(FLAGS_reduce_dtype);
  if (!reduce.ok())
    return absl::Status(reduce.status().code(), absl::StrCat("--reduce_dtype: ", reduce.status().message()));
  in.dtype = *dtype;
  in.reduce_dtype = *reduce;
  in.micro_batch = FLAGS_micro_batch;
  in.group_size = FLAGS_group_size;
  in.prompts_per_iteration = FLAGS_prompts_per_iteration;
  in.steps = FLAGS_steps;
  in.world = world;
  in.sp = FLAGS_sp;
  in.zero_stage = FLAGS_zero_stage;
  in.checkpointing = FLAGS_activation_checkpointing;
  in.ema = FLAGS_ema;
  in.cfg = FLAGS_cfg_scale != 1.0;
  in.trainable = FLAGS_trainable;
  auto lora = LoraConfigFromFlags();
  if (!lora.ok()) return lora.status();
  in.lora_rank = lora->rank;
  in.lora_alpha = lora->alpha;
  in.lora_targets = lora->targets;
  in.cuda = FLAGS_device == "cuda";
  in.ranks_per_node = FLAGS_ranks_per_node > 0 ? FLAGS_ranks_per_node : world;
  if (FLAGS_memory_gb > 0) {
    in.device_bytes = FLAGS_memory_gb * 1e9;
  } else if (!in.cuda) {
    in.host_bytes = static_cast<double>(hpc::MachineMemoryBytes());
    in.device_bytes = in.host_bytes / std::min(in.ranks_per_node, world);
  }
  return in;
}

}  // namespace dancegrpo::tools
