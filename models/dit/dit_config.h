// Configuration of the video diffusion transformer (models/dit/dit.h), its presets, and
// closed-form counts of its parameters and FLOPs.
//
// The block structure mirrors Wan2.1's public text-to-video DiT (github.com/Wan-Video/Wan2.1,
// wan/modules/model.py): patch embedding as a 3D convolution, a sinusoidal timestep
// embedding through an MLP and a projection to six adaLN modulation vectors per block,
// self-attention with RMS-normalised queries and keys and 3D RoPE, cross-attention to the
// text tokens (with an affine LayerNorm before it), a GELU(tanh) feed-forward, and a
// modulated head. Parameter names follow Wan's, so its checkpoints map by identity.
// We add an optional pooled-text projection (pooled_dim > 0) that joins the timestep
// embedding, and an optional convolutional stem (stem_channels > 0); the Wan presets keep both
// off.
#ifndef DANCEGRPO_MODELS_DIT_DIT_CONFIG_H_
#define DANCEGRPO_MODELS_DIT_DIT_CONFIG_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/module_shape.h"

namespace dancegrpo::models {

struct DitConfig {
  std::string name;
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  std::array<int64_t, 3> patch = {1, 2, 2};  // (frames, rows, cols)
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t heads = 12;
  int64_t layers = 30;
  int64_t text_dim = 4096;    // width of the text token embeddings
  int64_t pooled_dim = 0;     // width of the pooled text vector; 0 = not used
  int64_t freq_dim = 256;     // sinusoidal timestep embedding width
  // Channels of an optional pixel-level stem ahead of the patch embedding: two 3x3x3
  // convolutions (GELU) whose features are concatenated to the latent before patchifying, so
  // the first layer sees motion at full resolution. 0 = none (the Wan presets).
  int64_t stem_channels = 0;
  double eps = 1e-6;
  // Text tokens the model was trained with. 0 = any length (the text mask decides).
  int64_t text_len = 0;
  // Wan's convention (its WanModel.forward): every prompt's token embeddings are zero-padded
  // to text_len and cross-attention attends to all text_len positions, pads included. A Wan
  // checkpoint reproduces Wan's outputs only this way; the mask-only behaviour (false)
  // attends to the real tokens alone, for models trained with masks. Needs text_len > 0.
  bool pad_text_to_len = false;
  bool activation_checkpointing = false;

  int64_t head_dim() const { return dim / heads; }
  int64_t patch_volume() const { return patch[0] * patch[1] * patch[2]; }
};

// Fails (naming the field) for dim not divisible by heads, an odd or too-small head_dim
// (RoPE rotates pairs across three axes), or non-positive sizes.
absl::Status ValidateDitConfig(const DitConfig& c);

// The presets: "tiny" (unit tests, < 1M parameters), "small" (the CPU demo),
// "wan2.1-1.3b" (mirrors Wan2.1-T2V-1.3B: dim 1536, ffn 8960, 12 heads, 30 layers,
// umT5 text width 4096) and "wan2.1-14b" (mirrors Wan2.1-T2V-14B: dim 5120, ffn 13824,
// 40 heads, 40 layers).
absl::StatusOr<DitConfig> DitPreset(const std::string& name);
std::vector<std::string> DitPresetNames();

// A config from a JSON file holding Wan2.1's own config.json fields: dim, ffn_dim,
// num_heads, num_layers, in_dim, out_dim, text_len, text_dim, freq_dim, patch_size, eps
// (model_type must be "t2v" if present; qk_norm and cross_attn_norm must be true; window_size
// must be [-1, -1]), plus our optional fields: "pooled_dim", "stem_channels" and
// "text_attention": "wan_padded" (the default when text_len > 0) or "mask". Fields that do
// not change the network (_class_name, _diffusers_version, ...) are ignored; an unknown field
// that would is refused, naming it. Errors name the file and the field.
absl::StatusOr<DitConfig> DitConfigFromJson(const std::string& path);
// A preset name or a path to a config.json.
absl::StatusOr<DitConfig> DitConfigFromPresetOrFile(const std::string& preset_or_path);
// The config as Wan-style JSON (readable back by DitConfigFromJson).
std::string DitConfigToJson(const DitConfig& c);

// Number of parameters, from the architecture's formula (not by instantiating it).
int64_t DitParameterCount(const DitConfig& c);
// The DiT's parameters module by module ("blocks.3.ffn", "head", ...), in the model's order,
// from the config alone: the one inventory (DitParameterCount sums it; the planner reads it
// through models/dit/dit_family.h).
std::vector<ModuleShape> DitModules(const DitConfig& c);

// Multiply-add FLOPs (2 per MAC) of one forward pass on `batch` clips of `tokens` video
// tokens each, with `text_tokens` text tokens. Backward is about twice this.
double DitForwardFlops(const DitConfig& c, int64_t batch, int64_t tokens, int64_t text_tokens);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_DIT_CONFIG_H_
