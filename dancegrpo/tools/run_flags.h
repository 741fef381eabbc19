// The settings of a run as flags: one RunConfig, built from the flags in one place and used
// by train, plan and evaluate, so that a train command line means the same to all three.
// Every flag's default is read from a default-constructed TrainerConfig (trainer_config.h),
// LoraConfig or UserModelOptions: each default is written once, in its struct. The model
// flags (--model, --weights, ...) are in model_flags.h.
#ifndef DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_
#define DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hpc/blas_kernels.h"
#include "dancegrpo/io/inputs.h"
#include "dancegrpo/plan/memory_plan.h"
#include "dancegrpo/trainer_config.h"
#include "gflags/gflags.h"

DECLARE_uint64(seed);
DECLARE_int64(iterations);
DECLARE_int32(prompts_per_iteration);
DECLARE_int32(group_size);
DECLARE_int32(steps);
DECLARE_int32(micro_batch);
DECLARE_int32(sp);
DECLARE_int32(ulysses);
DECLARE_int32(zero_stage);
DECLARE_double(cfg_scale);
DECLARE_bool(ema);
DECLARE_double(memory_gb);
DECLARE_int32(ranks_per_node);
DECLARE_bool(print_config);

namespace dancegrpo::tools {

struct RunConfig {
  // The algorithm, layout, sampler and optimizer. latent_shape is resolved once the model's
  // channels are known (LatentShapeFromFlags); device is CPU or CUDA without an index (train
  // takes the GPU of its launcher-local rank, DeviceFromFlag).
  TrainerConfig trainer;
  // The model flags (seed: trainer.seed; device and compute dtype: the trainer's).
  UserModelOptions model;
  // The memory to check the plan against: --memory_gb per rank, else on the CPU this
  // machine's memory shared by --ranks_per_node ranks (0: all ranks on this node).
  double memory_gb = 0;
  int ranks_per_node = 0;
};

// The run the flags describe, validated (ValidateTrainerConfig, the LoRA flags, --device,
// --precision, --reduce_dtype, --sde, --memory_gb): a bad setting fails here, naming the
// flag and the fix, before anything is loaded.
absl::StatusOr<RunConfig> RunConfigFromFlags();

// --latent_shape, or --video_size over --vae_stride, for a model of `in_channels` channels.
absl::StatusOr<std::vector<int64_t>> LatentShapeFromFlags(int64_t in_channels);

// The memory plan's input for `run` on `world` ranks: the DiT's config (fails for a model
// that is not a DiT) and the latent shape from the flags, and the memory to check against.
absl::StatusOr<PlanInput> PlanInputFor(const RunConfig& run, int world);

// The run's settings as "key=value" lines (DescribeConfig, then the model flags); what
// --print_config prints in train, plan and evaluate.
std::string DescribeRunConfig(const RunConfig& run);

// The BLAS kernels, per --blas_kernels (auto: the best this CPU runs, after a GEMM self-check;
// openblas: OpenBLAS's own choice, checked). Call first thing in main, before any BLAS work.
absl::StatusOr<hpc::BlasChoice> ChooseBlasFromFlags();

// The flags among `names` that were given on the command line (or a flag file).
std::set<std::string> ExplicitFlags(const std::vector<std::string>& names);

}  // namespace dancegrpo::tools

#endif  // DANCEGRPO_DANCEGRPO_TOOLS_RUN_FLAGS_H_
