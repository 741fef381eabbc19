// The flags that shape a training run's layout and memory, shared by train and plan (so that
// `plan` takes a train command line as it is): --sp, --zero_stage, --micro_batch,
// --group_size, --prompts_per_iteration, --steps, --timestep_fraction, --trainable,
// --reduce_dtype, --ema, --cfg_scale, --memory_gb, --ranks_per_node, and LoRA's --lora_rank,
// --lora_alpha, --lora_targets, --lora_dropout.
#ifndef DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_
#define DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "dancegrpo/memory_plan.h"
#include "models/lora.h"
#include "gflags/gflags.h"

DECLARE_string(reduce_dtype);
DECLARE_int32(sp);
DECLARE_int32(zero_stage);
DECLARE_int32(prompts_per_iteration);
DECLARE_int32(group_size);
DECLARE_int32(steps);
DECLARE_int32(micro_batch);
DECLARE_double(timestep_fraction);
DECLARE_double(cfg_scale);
DECLARE_string(trainable);
DECLARE_bool(ema);
DECLARE_double(memory_gb);
DECLARE_int32(ranks_per_node);
DECLARE_int32(lora_rank);
DECLARE_double(lora_alpha);
DECLARE_string(lora_targets);
DECLARE_double(lora_dropout);

namespace dancegrpo::tools {

// The plan of a run of `world` ranks as the flags (these and model_flags.h's) describe it,
// with the memory to check against: --memory_gb per rank if given; otherwise on the CPU this
// machine's memory shared by --ranks_per_node ranks (default: all ranks on this node), and
// on a GPU no check (pass --memory_gb, e.g. 80). Fails for a model that is not a DiT.
absl::StatusOr<PlanInput> PlanInputFromFlags(int world);

// The LoRA flags as a config (rank 0: no LoRA). Fails for a LoRA option given while
// --lora_rank is 0, or a negative rank; AttachLora checks the rest.
absl::StatusOr<models::LoraConfig> LoraConfigFromFlags();

}  // namespace dancegrpo::tools

#endif  // DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_
