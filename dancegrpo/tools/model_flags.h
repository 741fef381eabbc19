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
#include "dancegrpo/io/inputs.h"
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

// --device as a torch device. "cuda" takes GPU `local_rank` (the launcher's node-local rank),
// or the only visible GPU when the launcher gave each rank one. Fails with the fix when no
// GPU is visible (or libtorch has no CUDA), or when this rank's local rank has no GPU of its
// own (more ranks than GPUs on the node: NCCL allows one rank per GPU).
absl::StatusOr<torch::Device> DeviceFromFlag(int local_rank);

// The UserModelOptions the flags describe (seed and device given by the caller).
UserModelOptions ModelOptionsFromFlags(uint64_t seed, const torch::Device& device);

}  // namespace dancegrpo::tools

#endif  // DANCEGRPO_DANCEGRPO_TOOLS_MODEL_FLAGS_H_
