// The flags that name a user's model, shared by train and evaluate (and documented in the
// README's "Train your own model"): --model, --weights, --weights_prefix, --embeddings,
// --latent_shape / --video_size + --vae_stride, --decoder, --rewards, --device, --precision,
// --activation_checkpointing.
#ifndef DANCEGRPO_DANCEGRPO_TOOLS_MODEL_FLAGS_H_
#define DANCEGRPO_DANCEGRPO_TOOLS_MODEL_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "dancegrpo/inputs.h"
#include "gflags/gflags.h"

DECLARE_string(model);
DECLARE_string(weights);
DECLARE_string(weights_prefix);
DECLARE_string(embeddings);
DECLARE_string(latent_shape);
DECLARE_string(video_size);
DECLARE_string(vae_stride);
DECLARE_string(decoder);
DECLARE_string(rewards);
DECLARE_string(device);
DECLARE_string(precision);
DECLARE_bool(activation_checkpointing);

namespace dancegrpo::tools {

// --device as a torch device. "cuda" takes the launcher-local GPU (local_rank modulo the
// visible GPUs is NOT done: one rank per GPU, see hpc/nccl_bootstrap.h). Fails with the fix
// when CUDA is asked for and no GPU is visible, or when this build has no CUDA.
absl::StatusOr<torch::Device> DeviceFromFlag(int local_rank);

// The UserModelOptions the flags describe (seed and device given by the caller).
UserModelOptions ModelOptionsFromFlags(uint64_t seed, const torch::Device& device);

}  // namespace dancegrpo::tools

#endif  // DANCEGRPO_DANCEGRPO_TOOLS_MODEL_FLAGS_H_
