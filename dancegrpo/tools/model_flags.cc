#include "dancegrpo/tools/model_flags.h"

#include <torch/cuda.h>

#include "absl/strings/str_cat.h"
#include "dancegrpo/trainer_config.h"

DEFINE_string(model, "toy",
              "the policy: a DiT preset (tiny, small, wan2.1-1.3b, wan2.1-14b), a config.json with Wan2.1's fields, "
              "or 'toy' (the built-in MLP toy world, for smoke tests)");
DEFINE_string(weights, "",
              "initial DiT weights: one .safetensors file or a sharded set's .safetensors.index.json; empty = random "
              "weights from --seed");
DEFINE_string(weights_prefix, "", "a prefix to strip from the stored tensor names (e.g. model.diffusion_model.)");
DEFINE_string(embeddings, "", "precomputed text embeddings (HDF5, keyed by prompt text; see README)");
DEFINE_string(latent_shape, "", "latent shape C,F,H,W (e.g. 16,21,60,104); or give --video_size");
DEFINE_string(video_size, "", "video size F,H,W in pixels (e.g. 81,480,832), mapped to latents by --vae_stride");
DEFINE_string(vae_stride, "4,8,8", "the VAE's strides (frames, height, width), with --video_size");
DEFINE_string(decoder, "none",
              "latents to RGB clips: wan-vae:PATH[,tiled][,tile=PIXELS][,stride=PIXELS] (Wan2.1's VAE, native; PATH a "
              "diffusers VAE folder or .safetensors), a TorchScript decoder file, or none");
DEFINE_string(rewards, "", "weighted rewards, e.g. torchscript=hps.pt:0.7,torchscript=clip.pt:1.4 or alignment:1");
DEFINE_string(device, dancegrpo::TrainerConfig().device.is_cuda() ? "cuda" : "cpu", "cpu | cuda (one rank per GPU, the launcher's local rank picks it)");
DEFINE_string(precision, dancegrpo::PrecisionName(dancegrpo::TrainerConfig().compute_dtype),
              "fp32 | bf16: bf16 compute weights and activations, fp32 master weights and AdamW moments; the SDE "
              "step, log-probs, advantages and ratio stay fp32");
DEFINE_bool(activation_checkpointing, dancegrpo::UserModelOptions().activation_checkpointing, "recompute each DiT block in backward instead of keeping activations");

namespace dancegrpo::tools {

absl::StatusOr<torch::Device> DeviceFromFlag(int local_rank) {
  if (FLAGS_device == "cpu") return torch::Device(torch::kCPU);
  if (FLAGS_device != "cuda")
    return absl::InvalidArgumentError(absl::StrCat("--device=", FLAGS_device, " is unknown; use cpu or cuda"));
  if (!torch::cuda::is_available())
    return absl::FailedPreconditionError(
        "--device=cuda, but no GPU is visible to this process (CUDA_VISIBLE_DEVICES, the allocation's --gpus, or a "
        "CPU-only libtorch build); run on a GPU node with a CUDA libtorch, or use --device=cpu");
  const int visible = static_cast<int>(torch::cuda::device_count());
  // A launcher that binds one GPU to each rank (srun --gpus-per-task=1) leaves each rank one
  // visible device: take it. Two ranks on one GPU are caught by the NCCL bootstrap, which
  // compares the GPUs' bus ids across ranks.
  if (visible == 1) return torch::Device(torch::kCUDA, 0);
  if (local_rank >= visible)
    return absl::FailedPreconditionError(absl::StrCat(
        "local rank ", local_rank, " has no GPU of its own: this node shows ", visible,
        " GPU(s). Start at most one rank per GPU (mpirun --map-by ppr:", visible, ":node, or srun --ntasks-per-node=",
        visible, ")"));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

UserModelOptions ModelOptionsFromFlags(uint64_t seed, const torch::Device& device) {
  UserModelOptions o;
  o.model = FLAGS_model;
  o.weights = FLAGS_weights;
  o.weights_prefix = FLAGS_weights_prefix;
  o.embeddings = FLAGS_embeddings;
  o.decoder = FLAGS_decoder;
  o.rewards = FLAGS_rewards;
  o.activation_checkpointing = FLAGS_activation_checkpointing;
  o.seed = seed;
  o.device = device;
  return o;
}

}  // namespace dancegrpo::tools
