// Wan2.1's VAE decoder, native in libtorch: latents [B, z_dim, F, H, W] as the DiT produces them
// (normalised with the VAE's per-channel latent mean and std) to RGB clips [B, 3, 4F - 3, 8H, 8W]
// in [-1, 1], as Wan's `WanVAE.decode` and diffusers' `AutoencoderKLWan.decode` compute them.
//
// The architecture is Wan's (wan/modules/vae.py): un-normalise (z * std + mean), a 1x1x1
// post-quant convolution (`conv2`), then the decoder one latent frame at a time: a causal 3D
// convolution, a middle of residual block / single-head attention / residual block, up-sampling
// stages of residual blocks (RMS norm, SiLU, causal 3x3x3 convolutions) each ending in a
// nearest x2 spatial up-sampling with a 3x3 convolution that halves the channels and, in the
// temporal stages, a causal (3, 1, 1) convolution that doubles the frames; then RMS norm, SiLU
// and a causal convolution to RGB; finally a clamp to [-1, 1].
//
// The chunk-and-cache contract (what makes a chunked decode equal a whole one): every causal
// convolution keeps the last two frames of its input from the previous chunk and prepends them
// instead of zero padding; a temporal up-sampling skips its first chunk (the first latent frame
// gives one video frame, each later one four). So memory is bounded by one chunk's activations
// plus the cache, whatever F is.
//
// Optional spatial tiling (diffusers' tiled_decode): the latent plane is cut into overlapping
// tiles (tile / 8 latents wide, stride / 8 apart; diffusers' defaults 256 and 192 pixels), each
// decoded whole over time, and the overlaps blended linearly. It bounds memory by the tile, at
// the cost of small differences near tile seams (see wan_vae_test for the measured size).
//
// Weights: diffusers' AutoencoderKLWan folder (config.json + diffusion_pytorch_model.safetensors,
// diffusers' names) or a .safetensors file with Wan's own names (Wan2.1_VAE.pth converted by
// scripts/wan_vae/pth_to_safetensors.py; libtorch cannot unpickle the .pth). The encoder's
// tensors are ignored; anything else unknown, missing or misshapen is an error naming it.
#ifndef DANCEGRPO_MODELS_VAE_WAN_VAE_H_
#define DANCEGRPO_MODELS_VAE_WAN_VAE_H_

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/velocity_model.h"

namespace dancegrpo::models::vae {

struct WanVaeConfig {
  int64_t dim = 96;   // decoder base channels (diffusers: decoder_base_dim, else base_dim)
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<bool> temporal_downsample = {false, true, true};  // the encoder's; the decoder reverses it
  std::vector<float> latents_mean;  // z_dim values each
  std::vector<float> latents_std;

  static WanVaeConfig Wan21();  // Wan2.1's VAE, with its latent mean and std
  int64_t temporal_stride() const;  // 4 for Wan2.1
  int64_t spatial_stride() const;   // 8 for Wan2.1
  int64_t VideoFrames(int64_t latent_frames) const { return 1 + temporal_stride() * (latent_frames - 1); }
};

absl::Status ValidateWanVaeConfig(const WanVaeConfig& c);
// diffusers' AutoencoderKLWan config.json; `source` names the file in errors. Wan2.2's
// residual VAE (is_residual, patch_size) is refused, naming the field.
absl::StatusOr<WanVaeConfig> WanVaeConfigFromDiffusersJson(const std::string& json_text, const std::string& source);

// Every decoder-side tensor Wan's code has for this config, under Wan's names, with its shape
// (conv2.*, decoder.*), in the order vae.py creates them.
std::vector<std::pair<std::string, std::vector<int64_t>>> WanVaeDecoderLayout(const WanVaeConfig& c);
// diffusers' AutoencoderKLWan name -> Wan's name (post_quant_conv -> conv2, decoder.conv_in ->
// decoder.conv1, mid_block.resnets.0 -> middle.0, up_blocks.i.resnets.j -> upsamples.k, ...).
// nullopt for names outside the decoder side (encoder, quant_conv) and names it does not know.
std::optional<std::string> WanNameFromDiffusers(const std::string& name, int64_t num_res_blocks);

struct WanVaeOptions {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;  // kFloat or kBFloat16 (weights and activations)
  bool tiling = false;
  int64_t tile = 256;         // pixels (a multiple of the spatial stride)
  int64_t tile_stride = 192;  // pixels, < tile
};

// `--decoder`'s native form: "wan-vae:PATH[,tiled][,tile=PIXELS][,stride=PIXELS]" (tile or
// stride imply tiling; defaults 256 and 192). nullopt when `spec` does not start with wan-vae:.
struct WanVaeSpec {
  std::string path;
  WanVaeOptions options;
};
absl::StatusOr<std::optional<WanVaeSpec>> ParseWanVaeSpec(const std::string& spec);

// The config WanVaeDecoder::Load uses for `path`, without reading the weights: the folder's
// config.json (or vae/config.json), a config.json beside a .safetensors file, else Wan2.1's.
absl::StatusOr<WanVaeConfig> ReadWanVaeConfig(const std::string& path);

// What one Decode of `batch` clips of latents [z_dim, frames, height, width] holds (bytes),
// term by term, following DecodeUnclamped's allocations:
//   weights  the decoder's tensors in its dtype;
//   cache    every causal convolution's last two input frames, at its resolution (per tile);
//   chunk    the working set of one chunk (one latent frame; four video frames after the
//            temporal stages): kChunkTensors tensors the size of the largest one (the
//            up-sampled input of the last 2-D resample), a factor measured by bench/vae_bench;
//   tiles    with tiling, every tile's decoded clip until they are blended;
//   output   the decoded chunks, the clip they are joined into, and its clamped fp32 copy.
struct WanVaeDecodeMemory {
  int64_t weights = 0, cache = 0, chunk = 0, tiles = 0, output = 0;
  int64_t peak() const { return weights + cache + chunk + tiles + output; }
};
WanVaeDecodeMemory PlanWanVaeDecode(const WanVaeConfig& c, const WanVaeOptions& o, int64_t batch, int64_t frames,
                                    int64_t height, int64_t width);

class WanVaeDecoder : public LatentDecoder {
 public:
  // `path`: a diffusers VAE folder (or a model folder with vae/ inside), or a .safetensors
  // file (Wan's or diffusers' names; the config comes from a config.json beside it, else
  // Wan2.1's, which needs z_dim 16).
  static absl::StatusOr<std::shared_ptr<WanVaeDecoder>> Load(const std::string& path, const WanVaeOptions& options = {});
  // From a config and a .safetensors file (Wan's or diffusers' names).
  static absl::StatusOr<std::shared_ptr<WanVaeDecoder>> FromFile(const WanVaeConfig& config, const std::string& file,
                                                                 const WanVaeOptions& options = {});
  // From tensors under Wan's names (decoder side; extra encoder tensors are ignored).
  static absl::StatusOr<std::shared_ptr<WanVaeDecoder>> FromTensors(const WanVaeConfig& config,
                                                                    std::map<std::string, torch::Tensor> tensors,
                                                                    const WanVaeOptions& options = {},
                                                                    const std::string& source = "tensors");

  // Clips in [-1, 1], float32, [B, 3, 4F - 3, 8H, 8W]; checks the latents' shape and the output.
  absl::StatusOr<torch::Tensor> Decode(const torch::Tensor& latents) override;
  // The decoder's output before the clamp, in the decoder's dtype (for the numerics tests).
  torch::Tensor DecodeUnclamped(const torch::Tensor& latents);

  const WanVaeConfig& config() const { return config_; }
  const WanVaeOptions& options() const { return options_; }
  const std::string& source() const { return source_; }

 private:
  struct Cache;
  torch::Tensor DecodeWhole(const torch::Tensor& x);  // after conv2, one plane
  torch::Tensor DecodeTiled(const torch::Tensor& x);
  torch::Tensor DecodeChunk(const torch::Tensor& x, Cache& cache);
  // Take their input by value: a caller that moves it in lets it go as soon as it is used (the
  // decode's peak is a chunk's few live activations).
  torch::Tensor Residual(const std::string& prefix, torch::Tensor x, Cache& cache);
  torch::Tensor Attention(const std::string& prefix, const torch::Tensor& x);
  torch::Tensor Upsample(const std::string& prefix, bool temporal, torch::Tensor x, Cache& cache);
  torch::Tensor CachedConv(const std::string& prefix, torch::Tensor x, Cache& cache);
  const torch::Tensor& W(const std::string& name) const;

  WanVaeConfig config_;
  WanVaeOptions options_;
  std::string source_;
  std::map<std::string, torch::Tensor> w_;
  torch::Tensor mean_, inv_std_;  // [1, z, 1, 1, 1]
  int64_t cached_convs_ = 0;      // cache slots per chunk (causal convs and temporal up-samplings)
  bool upcast_ = false;           // bf16 on the CPU: convolutions computed in float32 (see the .cc)
};

}  // namespace dancegrpo::models::vae

#endif  // DANCEGRPO_MODELS_VAE_WAN_VAE_H_
