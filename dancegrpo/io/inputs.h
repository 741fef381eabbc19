// A user's own model, prompts, decoder and rewards: what `train` and `evaluate` read from
// the command line, checked against each other before anything runs.
//
//   model       a DiT preset (tiny, small, wan2.1-1.3b, wan2.1-14b) or a config.json with
//               Wan2.1's fields (models/dit/dit_config.h: DitConfigFromJson)
//   weights     one .safetensors file, or a sharded set's *.safetensors.index.json; empty =
//               random initial weights drawn from the seed (the same on every rank)
//   prompts     one prompt a line (.txt), or JSON lines {"prompt": "...", "id": 7} (.jsonl;
//               "id" optional, "text" or "caption" accepted for "prompt")
//   embeddings  precomputed text embeddings in HDF5, keyed by prompt text
//               (models/text/precomputed_text_encoder.h has the schema)
//   latent      "C,F,H,W", or a video size "F,H,W" in pixels with the VAE's strides
//               (Wan: 4,8,8 and latent frames (F - 1) / 4 + 1)
//   decoder     wan-vae:DIR (Wan2.1's VAE, native: models/vae/wan_vae.h), a TorchScript
//               module from latents to RGB clips, or none (the rewards see the latents)
//   rewards     the weighted reward spec of rewards/video_rewards.h, torchscript= included
//
// Every error names the file or flag and the fix.
#ifndef DANCEGRPO_DANCEGRPO_IO_INPUTS_H_
#define DANCEGRPO_DANCEGRPO_IO_INPUTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "models/dit/dit.h"
#include "models/lora.h"
#include "models/text/precomputed_text_encoder.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo {

// Reads a prompt file: plain text (one prompt a line, surrounding whitespace dropped, blank
// lines skipped; the embeddings are keyed by the stripped text) or JSON lines
// (chosen by the .jsonl extension). Ids are the JSON "id" when given, else the line's
// index among the prompts. Fails, naming the file and line, on malformed JSON, a missing
// prompt field, a duplicate id or an empty file.
absl::StatusOr<std::vector<rewards::Prompt>> ReadPromptFile(const std::string& path);

// The latent shape [C, F, H, W] from "C,F,H,W", or from a video size "F,H,W" with VAE
// strides "sf,sh,sw" and the model's latent channels (a causal video VAE such as Wan's
// maps F frames to (F - 1) / sf + 1 latent frames). Exactly one of the two must be given.
absl::StatusOr<std::vector<int64_t>> ResolveLatentShape(const std::string& latent_shape, const std::string& video_size,
                                                        const std::string& vae_stride, int64_t latent_channels);

struct UserModelOptions {
  std::string model;           // preset or config.json
  std::string weights;         // .safetensors / .safetensors.index.json / empty
  std::string weights_prefix;  // stripped from stored names (e.g. "model.diffusion_model.")
  std::string embeddings;      // HDF5
  std::string decoder;         // wan-vae:PATH[,options], a TorchScript path, or "" / "none"
  std::string rewards;         // weighted spec
  bool activation_checkpointing = false;
  uint64_t seed = 1;
  torch::Device device = torch::kCPU;  // where the decoder and learned rewards run
  // The precision training will compute in. With bf16, weights stored in bf16 are read
  // straight into bf16 (the file's exact values; no fp32 copy of the model is made).
  torch::ScalarType compute_dtype = torch::kFloat32;
  // LoRA adapters to attach after the weights are loaded (rank 0 = none); their A is drawn
  // from `seed`.
  models::LoraConfig lora;
  // Compute the base weights' checksum (models::BaseChecksum), for runs whose checkpoints do
  // not hold the whole model (LoRA, --trainable).
  bool checksum_base = false;
};

struct UserModel {
  models::DitConfig config;
  // On the CPU, in fp32, or in bf16 when the compute dtype is bf16 and the weights are stored
  // in bf16; the trainer seeds its fp32 masters from it, then casts and moves it.
  std::shared_ptr<models::VideoDit> dit;
  std::shared_ptr<models::PrecomputedTextEncoder> encoder;
  std::shared_ptr<models::LatentDecoder> decoder;  // null: the rewards see the latents
  std::vector<rewards::WeightedReward> rewards;
  // The base weights: where they came from ("<file>", or "preset <name>, seed <s>" when drawn
  // at random) and, when asked for, models::BaseChecksum of them before adapters were added.
  std::string base_weights;
  std::string base_checksum;
  std::vector<std::string> lora_layers;  // the layers given adapters
};

// Builds the DiT (config, weights, then LoRA adapters), opens the embeddings, decoder and
// rewards, and
// checks that the embeddings fit the model (width = text_dim, length <= text_len, a pooled
// vector of pooled_dim when the model takes one).
absl::StatusOr<UserModel> LoadUserModel(const UserModelOptions& options);
// Only the DiT part of LoadUserModel (config, weights, adapters): `dit`, `config` and the base
// fields of the result are set.
absl::StatusOr<UserModel> LoadUserDit(const UserModelOptions& options);

// A fresh DiT of the same config (for a frozen reference policy).
std::shared_ptr<models::VideoDit> MakeDit(const models::DitConfig& config);

// Every prompt (and "" when `need_null`, for classifier-free guidance) has an embedding;
// otherwise lists the first missing prompts, naming both files.
absl::Status CheckPromptsHaveEmbeddings(const models::PrecomputedTextEncoder& encoder,
                                        const std::vector<rewards::Prompt>& prompts, const std::string& prompt_file,
                                        bool need_null = false);

// Checks the decoder (if any) against `latent_shape` (C,F,H,W) before training starts and
// replaces it by one that checks every clip's frame count (models/decoder_frames.h): the native
// Wan VAE declares its rule (4F - 3) and its latent channels; any other decoder is probed at F
// and F + 1 latent frames, so one that does not fit the latents, or pins its frame count (a
// torch.jit.trace export), fails here, naming why.
absl::Status CheckDecoderFits(std::shared_ptr<models::LatentDecoder>* decoder, const std::vector<int64_t>& latent_shape);

// `--decoder`: "none" / "", a TorchScript file, or the native Wan2.1 VAE
// "wan-vae:PATH[,tiled][,tile=PIXELS][,stride=PIXELS]" (PATH: a diffusers VAE folder or a
// .safetensors file; tile/stride imply tiling, defaults 256/192). It computes in `dtype`.
absl::StatusOr<std::shared_ptr<models::LatentDecoder>> LoadDecoder(const std::string& spec, const torch::Device& device,
                                                                  torch::ScalarType dtype);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_INPUTS_H_
